"""dockyard.api"""
