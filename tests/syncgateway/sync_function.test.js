// Tests of docker/sync-function.js, the Sync Gateway sync function, run with `node --test`
// (tests/syncgateway/test_sync_function.py runs this file from pytest).
//
// No Sync Gateway binary can run here, so the function runs inside a small harness that gives
// it what Sync Gateway gives a sync function: channel(), access(), requireUser(),
// requireAdmin(), requireRole(), requireAccess(), role(), expiry(), a thrown {forbidden} object
// refusing the write, and the rules that decide what a user reads: a document is readable by
// a user granted (by access() in the current revision of any document) one of its channels;
// writes through the admin port pass every require*() check.
"use strict";

const { test } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const SOURCE = fs.readFileSync(
  path.join(__dirname, "..", "..", "docker", "sync-function.js"),
  "utf8",
);
const ADMIN = null; // the writer of an admin-port request

class Forbidden extends Error {}

/** A database that runs the sync function the way Sync Gateway does (the parts we use). */
class Database {
  constructor(source) {
    this.docs = new Map(); // id -> {body, channels, grants}
    this.source = source;
  }

  /** Run the sync function for one write; returns {channels, grants} or throws Forbidden. */
  run(doc, oldDoc, writer) {
    const channels = new Set();
    const grants = new Map(); // user -> Set(channel)
    const list = (x) => (Array.isArray(x) ? x : [x]);
    const api = {
      channel: (...names) => names.flatMap(list).forEach((c) => channels.add(c)),
      access: (users, chans) => {
        for (const u of list(users)) {
          if (!grants.has(u)) grants.set(u, new Set());
          list(chans).forEach((c) => grants.get(u).add(c));
        }
      },
      role: () => {},
      expiry: () => {},
      requireAdmin: () => {
        if (writer !== ADMIN) throw { forbidden: "admin required" };
      },
      requireUser: (users) => {
        if (writer !== ADMIN && !list(users).includes(writer)) {
          throw { forbidden: "wrong user" };
        }
      },
      requireRole: () => {
        if (writer !== ADMIN) throw { forbidden: "missing role" };
      },
      requireAccess: (chans) => {
        if (writer !== ADMIN && !list(chans).some((c) => this.userChannels(writer).has(c))) {
          throw { forbidden: "missing channel access" };
        }
      },
    };
    const names = Object.keys(api);
    const sync = new Function(...names, `return (${this.source});`)(...names.map((n) => api[n]));
    try {
      sync(doc, oldDoc === undefined ? null : oldDoc);
    } catch (err) {
      if (err && typeof err === "object" && "forbidden" in err) throw new Forbidden(err.forbidden);
      throw err;
    }
    return { channels, grants };
  }

  /** PUT a document as `writer` (ADMIN or a user name). */
  put(doc, writer = ADMIN) {
    const old = this.docs.get(doc._id);
    const result = this.run(structuredClone(doc), old ? structuredClone(old.body) : null, writer);
    this.docs.set(doc._id, { body: structuredClone(doc), ...result });
  }

  /** DELETE a document as `writer`: the sync function sees a tombstone and the old body. */
  remove(id, writer = ADMIN) {
    const old = this.docs.get(id);
    const result = this.run({ _id: id, _deleted: true }, old ? structuredClone(old.body) : null, writer);
    this.docs.set(id, { body: { _id: id, _deleted: true }, ...result });
  }

  /** The channels `user` may read (granted by the current revisions). */
  userChannels(user) {
    const out = new Set();
    for (const { grants } of this.docs.values()) {
      for (const c of grants.get(user) || []) out.add(c);
    }
    return out;
  }

  channelsOf(id) {
    return [...this.docs.get(id).channels].sort();
  }

  /** What a user's pull replication (or GET) through the public port can read. */
  readable(user) {
    const mine = this.userChannels(user);
    return [...this.docs.entries()]
      .filter(([, d]) => [...d.channels].some((c) => mine.has(c)))
      .map(([id]) => id)
      .sort();
  }
}

const userDoc = (name) => ({
  _id: `user:${name}`,
  type: "user",
  "user-id": `user:${name}`,
  username: name,
  email: `${name}@example.org`,
  admin: false,
  "password-hash": "scrypt$16384$8$1$c2FsdA$aGFzaA",
});
const TYPES = ["datafile", "dataset", "solver", "training-job", "classifier", "classify-job"];
const owned = (type, owner, n = 1) => ({
  _id: `${type}:${owner}:${n}`,
  type,
  "user-id": `user:${owner}`,
  "processing-state": "pending",
});

function twoUsers() {
  const db = new Database(SOURCE);
  for (const name of ["alice", "bob"]) {
    db.put(userDoc(name));
    for (const type of TYPES) db.put(owned(type, name));
  }
  return db;
}

test("each user's documents go to that user's channel only", () => {
  const db = twoUsers();
  for (const type of TYPES) {
    assert.deepEqual(db.channelsOf(`${type}:alice:1`), ["user.alice"]);
    assert.deepEqual(db.channelsOf(`${type}:bob:1`), ["user.bob"]);
  }
});

test("a user reads their own documents and none of another user's", () => {
  const db = twoUsers();
  assert.deepEqual([...db.userChannels("alice")], ["user.alice"]);
  assert.deepEqual(db.readable("alice"), TYPES.map((t) => `${t}:alice:1`).sort());
  assert.deepEqual(db.readable("bob"), TYPES.map((t) => `${t}:bob:1`).sort());
  assert.deepEqual(db.readable("mallory"), []); // a user with no documents reads nothing
});

test("users cannot write through Sync Gateway: create, update and delete are forbidden", () => {
  const db = twoUsers();
  assert.throws(() => db.put(owned("datafile", "alice", 2), "alice"), Forbidden);
  assert.throws(() => db.put({ ...owned("dataset", "alice"), "processing-state": "x" }, "alice"), Forbidden);
  assert.throws(() => db.put(owned("solver", "bob", 9), "alice"), Forbidden);
  assert.throws(() => db.put(userDoc("alice"), "alice"), Forbidden);
  assert.throws(() => db.remove("datafile:alice:1", "alice"), Forbidden);
  // Nothing changed, and the admin port still writes.
  assert.equal(db.docs.get("dataset:alice:1").body["processing-state"], "pending");
  assert.ok(!db.docs.has("datafile:alice:2"));
  db.put(owned("datafile", "alice", 2));
  assert.deepEqual(db.channelsOf("datafile:alice:2"), ["user.alice"]);
});

test("secrets reach no channel: user documents, tokens, and any document holding a hash", () => {
  const db = twoUsers();
  db.put({ _id: "token:alice:1", type: "token", "user-id": "user:alice", "secret-hash": "ab" });
  db.put({ ...owned("classifier", "alice", 7), "password-hash": "leaked" });
  db.put({ ...owned("solver", "alice", 8), token: "et_x.y" });
  for (const id of ["user:alice", "user:bob", "token:alice:1", "classifier:alice:7", "solver:alice:8"]) {
    assert.deepEqual(db.channelsOf(id), [], id);
  }
  for (const user of ["alice", "bob"]) {
    const seen = db.readable(user).map((id) => db.docs.get(id).body);
    assert.ok(seen.every((d) => !("password-hash" in d) && !("secret-hash" in d) && !("token" in d)));
  }
});

test("service documents and documents without a valid owner go to no channel", () => {
  const db = twoUsers();
  db.put({ _id: "worker:host-1", type: "worker", capabilities: {} });
  db.put({ _id: "nobody", "user-id": "user:alice" }); // no type
  db.put({ _id: "datafile:x", type: "datafile" }); // no owner
  db.put({ _id: "datafile:y", type: "datafile", "user-id": "user:" }); // empty owner
  db.put({ _id: "datafile:z", type: "datafile", "user-id": "alice" }); // not a user id
  for (const id of ["worker:host-1", "nobody", "datafile:x", "datafile:y", "datafile:z"]) {
    assert.deepEqual(db.channelsOf(id), [], id);
  }
});

test("a deletion stays in the owner's channel so the owner's replicas see it", () => {
  const db = twoUsers();
  db.remove("training-job:alice:1");
  assert.deepEqual(db.channelsOf("training-job:alice:1"), ["user.alice"]);
  assert.ok(db.readable("alice").includes("training-job:alice:1"));
  assert.ok(!db.readable("bob").includes("training-job:alice:1"));
});

test("access follows ownership: a document given to another owner leaves the first channel", () => {
  const db = twoUsers();
  db.put({ ...owned("datafile", "alice", 1), "user-id": "user:bob" });
  assert.deepEqual(db.channelsOf("datafile:alice:1"), ["user.bob"]);
  assert.ok(!db.readable("alice").includes("datafile:alice:1"));
  assert.ok(db.readable("bob").includes("datafile:alice:1"));
});
