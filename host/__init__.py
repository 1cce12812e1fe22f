"""pezo.host"""
