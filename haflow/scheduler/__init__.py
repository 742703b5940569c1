"""The scheduler daemon: elector + scheduling loop + executor, run as one supervised service."""
