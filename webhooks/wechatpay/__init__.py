"""WeChat Pay v3 notifications: verified, decrypted and checked against Siyu's orders before they are answered."""
