"""Durable orchestrators (stylize_video): filled by the Function App issue."""
