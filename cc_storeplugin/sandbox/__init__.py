"""Faithful stand-ins for Magento 2, Kibo and Constant Contact, served over real HTTP.

Each server lives in its own subpackage exposing ``create_app(**options) -> Flask``;
``server.serve_in_thread`` runs any of them on a loopback port for tests and benchmarks.
"""

SANDBOXES = ("magento", "kibo", "constantcontact")
