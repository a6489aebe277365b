"""Telegram update handlers, one concern per module."""
