"""The factory station: OEM keys, the manufacturer CA, provisioning of gateways."""
