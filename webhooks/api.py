"""Every router of the intake, for siyu/app.py to mount."""
from __future__ import annotations

from webhooks.admin_api import router as admin_router
from webhooks.miniprogram.api import router as miniprogram_router
from webhooks.official_account.api import router as official_account_router
from webhooks.wecom.api import router as wecom_router

ROUTERS = [wecom_router, official_account_router, miniprogram_router, admin_router]
