"""dockyard.containerd"""
