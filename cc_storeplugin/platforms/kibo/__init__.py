"""Kibo eCommerce platform: app-ticket client (``client``), errors and the source adapter."""
