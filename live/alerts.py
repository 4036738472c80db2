"""Alerts: cells entering 경계 or 심각, grouped per domain and lead, pushed to webhooks and dashboards."""
