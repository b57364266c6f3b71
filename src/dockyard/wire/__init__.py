"""dockyard.wire"""
