// Sync Gateway sync function of the ElasticThought database (docker/sync-gateway.json holds the
// same text as its "sync" string; tests/syncgateway checks they match and tests this function).
//
// - Only the service writes: every write through the public port (a Sync Gateway user) is
//   refused; the service writes through the admin port, where requireAdmin() passes.
// - Each resource document (datafile, dataset, solver, training job, classifier, classify job)
//   goes to its owner's channel "user.<username>" (owner = its "user-id", "user:<username>"),
//   and only that user is granted read access to that channel.
// - Documents holding secrets (user documents with password hashes, API tokens) and service
//   documents (workers, queue bookkeeping) go to no channel: only the admin port reads them.
// - A deletion keeps the channel of the last revision, so the owner's replicas see it.
function (doc, oldDoc) {
  requireAdmin();

  var OWNED_TYPES = ["datafile", "dataset", "solver", "training-job", "classifier",
                     "classify-job"];
  var SECRET_FIELDS = ["password", "password-hash", "secret", "secret-hash", "token"];
  var USER_PREFIX = "user:";

  function ownerChannel(username) {
    return "user." + username;
  }

  function hasSecret(d) {
    for (var i = 0; i < SECRET_FIELDS.length; i++) {
      if (Object.prototype.hasOwnProperty.call(d, SECRET_FIELDS[i])) {
        return true;
      }
    }
    return false;
  }

  var current = doc._deleted ? oldDoc : doc;
  if (!current || typeof current.type !== "string") {
    return;
  }
  if (current.type === "user") {
    // The user document itself stays in no channel (it holds the password hash).
    if (typeof current.username === "string" && current.username !== "") {
      access(current.username, ownerChannel(current.username));
    }
    return;
  }
  if (OWNED_TYPES.indexOf(current.type) < 0 || hasSecret(current)) {
    return;
  }
  var userId = current["user-id"];
  if (typeof userId !== "string" || userId.indexOf(USER_PREFIX) !== 0 ||
      userId.length === USER_PREFIX.length) {
    return;
  }
  var owner = userId.substring(USER_PREFIX.length);
  channel(ownerChannel(owner));
  access(owner, ownerChannel(owner));
}
