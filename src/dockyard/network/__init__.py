"""dockyard.network"""
