"""dockyard.http"""
