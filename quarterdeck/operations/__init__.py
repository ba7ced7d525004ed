"""Operating the portal itself: the job queue as admins see and steer it (pages, API)."""
