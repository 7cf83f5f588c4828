"""golf.submission"""
