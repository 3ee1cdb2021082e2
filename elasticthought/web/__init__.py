"""The web app: a single page of plain ES modules on the public REST API, served under
`APP_PATH` by the same `elasticthought serve` (see `elasticthought.web.app`)."""

from elasticthought.web.app import APP_PATH, OPENAPI_PATHS, bp

__all__ = ["APP_PATH", "OPENAPI_PATHS", "bp"]
