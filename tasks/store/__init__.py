"""tasks/store"""
