"""WeCom callbacks: 客户联系 (contacts, group chats, tags) and app events (template cards)."""
