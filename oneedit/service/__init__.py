"""The multi-user HTTP service (``oneedit serve``): API, model worker and chat page."""
