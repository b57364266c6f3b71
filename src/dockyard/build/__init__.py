"""dockyard.build"""
