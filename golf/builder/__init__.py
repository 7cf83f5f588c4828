"""golf.builder"""
