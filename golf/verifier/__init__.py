"""golf.verifier"""
