"""The OAuth family: family.py starts a flow, callback.py finishes it, refresh.py serves
token refreshes; state.py, provider.py and apps.py are what they need."""
