"""Magento 2 platform: OAuth 1.0a integration client (``client``), errors and handshake helpers."""
