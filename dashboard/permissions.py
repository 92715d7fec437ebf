"""View guards shared by the dashboard pages (roles beyond staff come with the dashboard work)."""
from functools import wraps

from django.core.exceptions import PermissionDenied


def staff_required(what: str):
    """Return a decorator letting only staff users through; `what` ends "only staff users may ..."."""
    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_staff:  # login_required must wrap this
                raise PermissionDenied(f"only staff users may {what}")
            return view(request, *args, **kwargs)
        return wrapped
    return decorator
