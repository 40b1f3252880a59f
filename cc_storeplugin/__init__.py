"""cc_storeplugin: connects Magento 2 and Kibo eCommerce stores to Constant Contact."""
