"""golf.trainer"""
