"""What runs logged, read by what it is and drawn once for every page that shows it: the
report (`sweepkit report`) and the dashboard (`sweepkit dashboard`)."""

from importlib import resources


def table_script() -> str:
    """`table.js`, the interactive table (sort, filter, group) both pages draw tables with,
    ready to inline in a <script>: "</" is escaped so that it cannot end the script early."""
    return (resources.files(__name__) / "table.js").read_text().replace("</", "<\\/")
