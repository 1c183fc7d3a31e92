"""Tables as a reader expects them: percentages, counts, folded configs."""

import pandas as pd
import pytest

from lib.core.display import config_table, show_table
from lib.papers.foundations.toy import CONFIGS


def test_percentages_counts_and_floats_are_formatted():
    frame = pd.DataFrame({"wer": [0.164508, 0.05], "utterances": [2000.0, 300.0],
                          "loss": [1.23456789, 0.000123456]})
    html = show_table(frame, percent=["wer"], integer=["utterances"]).to_html()
    assert "16.5 %" in html and "5.0 %" in html and "0.164508" not in html
    assert "2,000" in html and "2000.0" not in html
    assert "1.23" in html and "0.000123" in html and "1.23456789" not in html
    with pytest.raises(ValueError, match="no column matches 'acc'"):
        show_table(frame, percent=["acc"])


def test_config_is_folded_with_its_knob_count():
    html = config_table(CONFIGS["smoke"])._repr_html_()
    assert html.startswith('<details class="book-config">') and "knobs of <code>ToyConfig" in html
    assert html.count("<tr>") == 1 + len(CONFIGS["smoke"].__dataclass_fields__)
    assert "<code>lr</code></td><td>0.05" in html


def test_book_style_hides_the_positional_index_and_formats_numbers():
    import pandas as pd

    from lib.core.display import book_frame_html

    frame = pd.DataFrame({"wer": [0.164508, 0.2], "count": [2000.0, 3.0], "name": ["a", "b"]})
    markup = book_frame_html(frame)
    assert "0.1645" in markup and "0.164508" not in markup
    assert "2,000" in markup and "2000.0" not in markup
    assert ">0</th>" not in markup and ">1</th>" not in markup  # no positional index
    named = frame.set_index("name")
    assert ">a</th>" in book_frame_html(named)  # a meaningful index is kept


def test_book_style_is_registered_with_a_running_kernel():
    import pandas as pd
    from IPython.core.interactiveshell import InteractiveShell

    from lib.core.display import install_book_style

    shell = InteractiveShell.instance()
    assert install_book_style()
    frame = pd.DataFrame({"x": [0.5]}, index=pd.Index([0.3], name="budget"))
    styled = shell.display_formatter.format(frame.style.format("{:.1%}"))[0]["text/html"]
    assert "50.0%" in styled  # the chapter's own format is kept
    assert "0.300000" not in styled and ">0.3<" in styled  # float index to 4 digits
    plain = shell.display_formatter.format(pd.DataFrame({"y": [1.25]}))[0]["text/html"]
    assert 'class="dataframe book-table"' in plain and ">0<" not in plain
