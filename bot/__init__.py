"""The Telegram front end of the news answers bot."""
