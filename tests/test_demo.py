import json

from memestar.tiny.demo import format_table, run_demo


def test_demo_tunes_makes_scores_and_draws_its_contact_sheet(tmp_path):
    """`meme demo` on the shapes world, cut short (3 tuning steps, one new subject): a GIF per clip, the contact
    sheet, one scored row per new subject, and the table `make demo` prints (its mean row a mean of the seconds too)."""
    result = run_demo(tmp_path, steps=3, subjects=1, quiet=True, log=lambda *a: None, world_name="shapes")
    json.dumps(result)  # what `meme demo --json` prints
    assert result["world"] == "shapes" and result["sources"] == ["a red circle bouncing"]
    (row,) = result["results"]
    assert row["prompt"] == "a blue circle bouncing" and 0 <= row["colour_right"] <= 1
    assert (tmp_path / "a-blue-circle-bouncing.gif").is_file() and (tmp_path / "contact-sheet.png").is_file()
    table = format_table(result)
    assert len(result["tune_seconds"]) == 1 and "| a blue circle bouncing |" in table
    assert table.splitlines()[-1].endswith(f"| {row['seconds']:.2f} |")  # the mean row's seconds: the one clip's
