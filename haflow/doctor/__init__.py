"""`haflow doctor`: check every connection from the node it runs on and say what is wrong."""
