"""The REST API, HTTP only: validate a request, store documents, submit jobs.

app.py builds the Flask app and registers one blueprint per resource (each with its
`url_prefix`); requests are checked with `errors` / `validation` / `ownership`, resources
deleted with `deletion`; documents are made by `elasticthought.documents.model` and jobs queued
with its `submit()`. The API never imports the job runners or an engine's internals (checked
by lint-imports): engines are asked through `elasticthought.engine.registry`.

Routes (all JSON; errors `{"error": <HTTP status name>, "detail": <reason>}`; auth by HTTP Basic
or `Authorization: Token|Bearer <token>`; another user's document answers 404 everywhere):

- `POST /users` (open sign-up unless `--open-signup false`; then admin only), `GET /users`,
  `GET /users/me`, `GET|DELETE /users/{id}`, `POST /users/{id}/password`
- `POST|GET /tokens`, `GET|DELETE /tokens/{id}` (the secret is shown once, in `token`)
- `POST|GET /datafiles`, `GET|DELETE /datafiles/{id}` (POST: JSON `{url, layers_type,
  layers_data_param}` or multipart `file` + `layers_type` + `backend`)
- `POST|GET /datasets`, `GET|DELETE /datasets/{id}`
- `POST|GET /solvers`, `GET|DELETE /solvers/{id}`
- `POST|GET /training-jobs`, `GET|DELETE /training-jobs/{id}`, `GET .../status|metrics|logs|model|
  snapshots[/{name}]`, `POST .../cancel`
- `POST|GET /classifiers`, `GET|DELETE /classifiers/{id}`, `POST /classifiers/{id}/classify`
- `GET /classify-jobs`, `GET|DELETE /classify-jobs/{id}`, `POST /classify-jobs/{id}/cancel`
- `GET /workers`
- `GET /health`, `GET /openapi.json` (gathered from each module's `OPENAPI_PATHS`)

Lists take `?limit=` (1..1000, default 100) and `?skip=` and answer
`{"items": [...], "limit", "skip"}`, newest first. Documents are shown as stored plus `id`
(= `_id`), without `_rev`, `claim-id`, password hashes or token secrets.

Document shapes (ids are `<type>:user~<name>:<time key>`; users are `user:<name>`):

- user: `username, email, admin, password-hash (hidden), created-at`
- token: `name, created-at, expires-at, secret-hash (hidden)`
- datafile (a job): `url | (uploaded: true, filename, size)`, `layers_type` (IMAGE_DATA|DATA),
  `layers_data_param: {backend}`, `archive` (blob key), `processing-state`, `processing-log`;
  when finished: `labels`, `label-counts` ({label: n}), IMAGE_DATA `image-count`, DATA
  `record-count` and `backend`, `size`.
- dataset (a job): `training`/`testing: {datafile-id, split-percentage}`, `compute-mean`,
  `layers_type`; when finished: `labels` (in label-index order), DATA `backend`, and
  `artifacts: {training: {archive, list?, format, count, label-counts}, testing: {...},
  mean?}` with blob keys as in `elasticthought.blobs.layout`.
- solver: `dataset-id`, `specification`, `specification-net` (text as given),
  `specification-url`, `specification-net-url` (or null), `layers_type` of its data layers.
"""
