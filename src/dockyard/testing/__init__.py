"""dockyard.testing"""
