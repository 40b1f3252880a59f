from tests.web.conftest import merchant, signed_in  # noqa: F401  (shared fixtures)
