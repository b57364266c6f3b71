"""dockyard.oci"""
