"""tasks/pools"""
