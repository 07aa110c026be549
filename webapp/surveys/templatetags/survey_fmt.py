"""Number formatting for the results page: NaN (undefined statistic) shows as a dash."""
import math

from django import template

register = template.Library()


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@register.filter
def num(x, digits=2):
    return f"{x:.{int(digits)}f}" if _finite(x) else "—"


@register.filter
def pval(x):
    if not _finite(x):
        return "—"
    return "< 0.001" if x < 0.001 else f"{x:.3f}"


@register.filter
def label(key, labels):
    return labels.get(key, key)
