"""dockyard.registry"""
