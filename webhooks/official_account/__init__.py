"""Official-account callbacks: follows, scans, unfollows and text messages."""
