"""Render stage (pure): messages, the chat body, chat templates in a sandbox, prompt lint."""
