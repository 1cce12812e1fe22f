"""pezo.boards"""
