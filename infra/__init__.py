"""What Chalice does not own: tables, queues, alarms and event-source settings (see README.md)."""
