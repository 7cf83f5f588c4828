"""golf.model"""
