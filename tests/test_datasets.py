"""Tests for bayesmf.datasets: embedded data, MovieLens readers, download, CSV, synthetic, toy."""

from __future__ import annotations

import http.server
import io
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmf import datasets
from bayesmf.data import Ratings, RatingScale
from bayesmf.datasets import (
    download_movielens,
    load,
    load_csv,
    load_ml_latest_small,
    load_movielens,
    make_synthetic,
)
from bayesmf.exceptions import BayesMFError, DataError, DatasetNotFoundError

SHARED_ML = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small"

# A tiny MovieLens 100K: 4 users, 3 items, raw ids not 0..n-1.
U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n" \
         "196\t377\t5\t881250950\n244\t242\t2\t880606923\n"
U_ITEM = (
    "242|Kolya (1996)|24-Jan-1997||http://x|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
    "302|L.A. Confidential (1997)|01-Jan-1997||http://x|0|0|0|0|0|0|1|0|0|0|0|1|0|1|0|0|1|0|0\n"
    "377|Am\xe9lie (2001)|01-Jan-2001||http://x|0|0|0|0|0|1|0|0|0|0|0|0|0|0|1|0|0|0|0\n"
)


def write_ml100k(directory: Path, u_data: str = U_DATA, u_item: str | None = U_ITEM) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "u.data").write_text(u_data)
    if u_item is not None:
        (directory / "u.item").write_bytes(u_item.encode("latin-1"))
    return directory


def ml100k_zip(top: str = "ml-100k") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{top}/u.data", U_DATA)
        zf.writestr(f"{top}/u.item", U_ITEM.encode("latin-1"))
        zf.writestr(f"{top}/README", "tiny test copy\n" * 200)
    return buf.getvalue()


# ====================================================================== embedded data
def test_load_ml_latest_small(ml_small):
    r = ml_small
    assert (r.nnz, r.n_users, r.n_items) == (100836, 610, 9724)
    assert r.scale == RatingScale(0.5, 5.0, 0.5)
    assert r.name == "ml-latest-small"
    assert r.global_mean == pytest.approx(3.501557, abs=1e-6)
    assert r.user_ids[0] == 1 and r.user_ids[-1] == 610
    assert list(r.item_info.columns) == ["title", "genres"]
    assert r.item_info.index.name == "movieId"
    assert r.item_titles(r.item_index([1, 2])).tolist() == ["Toy Story (1995)", "Jumanji (1995)"]
    assert r.item_info.loc[1, "genres"] == "Adventure|Animation|Children|Comedy|Fantasy"
    first = r.to_frame().iloc[0]
    assert (first["user"], first["item"], first["rating"]) == (1, 1, 4.0)


def test_licence_readme_ships_with_the_data():
    from importlib import resources

    text = (resources.files("bayesmf") / "data_files" / "ml-latest-small-README.txt").read_text()
    assert "GroupLens" in text and "ratings.csv" in text


def test_load_ml_latest_small_fast_and_without_titles():
    t = time.perf_counter()
    r = load_ml_latest_small(titles=False)
    assert time.perf_counter() - t < 1.0
    assert r.item_info is None and r.nnz == 100836


@pytest.mark.skipif(not SHARED_ML.is_dir(), reason="shared ml-latest-small copy not present")
def test_embedded_equals_shared_directory(ml_small):
    r = load_movielens(SHARED_ML)
    assert r.name == "ml-latest-small"
    assert r.scale == ml_small.scale
    np.testing.assert_array_equal(r.values, ml_small.values)
    np.testing.assert_array_equal(r.users, ml_small.users)
    assert r.item_ids.equals(ml_small.item_ids)
    assert r.item_info["title"].equals(ml_small.item_info["title"])


# ====================================================================== toy
def test_toy(toy_ratings):
    r = toy_ratings
    assert r.user_ids.tolist() == ["Alice", "Bob", "Carol"]
    assert r.item_ids.tolist() == ["Sholay", "Swades", "Batman", "Interstellar", "Shawshank"]
    dense = np.full((3, 5), np.nan)
    dense[r.users, r.items] = r.values
    expected = np.array([[5, 4, 2, 3, 2], [np.nan, 5, 1, 4, np.nan], [4, np.nan, 1, 5, np.nan]])
    np.testing.assert_array_equal(dense, expected)
    assert r.nnz == 11 and r.scale == RatingScale(1, 5, 1) and r.name == "toy"
    assert r.item_titles(np.arange(5)).tolist() == r.item_ids.tolist()
    # round trip through a frame gives the same table
    back = Ratings.from_frame(r.to_frame(), scale=r.scale)
    assert sorted(map(tuple, back.to_frame().to_numpy().tolist())) == sorted(
        map(tuple, r.to_frame().to_numpy().tolist()))


# ====================================================================== synthetic
def test_synthetic_truth_consistent_continuous():
    r, truth = make_synthetic(n_users=50, n_items=30, rank=4, density=0.3, noise_sd=1e-9,
                              scale=None, random_state=3)
    np.testing.assert_allclose(r.values, truth.mean(r.users, r.items), atol=1e-7)
    assert r.scale is None
    assert truth.U.shape == (50, 4) and truth.V.shape == (30, 4) and truth.rank == 4
    # mean() is mu + b_u + b_i + u.v, by hand for one pair
    u, i = int(r.users[5]), int(r.items[5])
    by_hand = truth.mu + truth.user_bias[u] + truth.item_bias[i] + truth.U[u] @ truth.V[i]
    assert truth.mean(np.array([u]), np.array([i]))[0] == pytest.approx(by_hand)


def test_synthetic_rounding_to_scale():
    r, truth = make_synthetic(n_users=40, n_items=30, density=0.5, noise_sd=0.0, random_state=1)
    assert r.scale == RatingScale(1, 5, 1)
    np.testing.assert_array_equal(r.values, truth.scale.round(truth.mean(r.users, r.items)))
    assert set(np.unique(r.values)) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_synthetic_noise_level():
    r, truth = make_synthetic(n_users=300, n_items=200, rank=3, density=0.2, noise_sd=0.7,
                              scale=None, random_state=0)
    resid = r.values - truth.mean(r.users, r.items)
    assert resid.std() == pytest.approx(0.7, rel=0.03)       # 12,000 draws: se ~ 0.6%
    assert abs(resid.mean()) < 0.03
    # default factor_sd = rank**-0.25 gives u.v unit variance
    uv = np.einsum("nk,nk->n", truth.U[r.users], truth.V[r.items])
    assert uv.var() == pytest.approx(1.0, rel=0.2)
    assert truth.factor_sd == pytest.approx(3 ** -0.25)


def test_synthetic_pairs_distinct_covering_and_ids(small_synthetic):
    r, _ = small_synthetic
    assert r.nnz == 600
    codes = r.users.astype(np.int64) * r.n_items + r.items
    assert len(np.unique(codes)) == r.nnz
    assert r.user_counts.min() >= 1 and r.item_counts.min() >= 1
    assert r.user_ids[0] == "u0001" and r.user_ids[-1] == "u0060"
    assert r.item_ids[0] == 1001 and r.item_ids[-1] == 1040
    # ids sort in index order, so a frame round trip keeps indices
    back = Ratings.from_frame(r.to_frame(), scale=r.scale)
    np.testing.assert_array_equal(back.users, r.users)
    np.testing.assert_array_equal(back.items, r.items)


def test_synthetic_reproducible_and_seed_sensitive():
    a, ta = make_synthetic(random_state=7)
    b, tb = make_synthetic(random_state=7)
    c, _ = make_synthetic(random_state=8)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.users, b.users)
    np.testing.assert_array_equal(ta.U, tb.U)
    assert not (np.array_equal(a.users, c.users) and np.array_equal(a.values, c.values))


def test_synthetic_power_law_activity():
    kw = dict(n_users=400, n_items=300, n_ratings=12000, random_state=0)
    flat, _ = make_synthetic(activity_exponent=0.0, **kw)
    skew, _ = make_synthetic(activity_exponent=1.0, **kw)

    def top_share(counts):
        c = np.sort(counts)[::-1]
        return c[: len(c) // 10].sum() / c.sum()

    assert top_share(flat.user_counts) < 0.2
    assert top_share(skew.user_counts) > 0.3    # uniform: ~0.12
    assert top_share(skew.item_counts) > 0.3
    assert skew.user_counts.min() >= 1 and skew.nnz == 12000


def test_synthetic_no_biases_and_dense():
    r, t = make_synthetic(n_users=20, n_items=10, biases=False, density=1.0, random_state=0)
    assert not t.user_bias.any() and not t.item_bias.any()
    assert r.nnz == 200
    r2, _ = make_synthetic(n_users=20, n_items=10, density=0.9, activity_exponent=1.0)
    assert r2.nnz == 180 and len(np.unique(r2.users * 10 + r2.items)) == 180


def test_synthetic_saturated_heavy_users_stays_fast():
    # heavy users run out of items: rejection sampling stalls, the fallback must finish
    t = time.perf_counter()
    r, _ = make_synthetic(n_users=200, n_items=150, density=0.45, activity_exponent=2.0,
                          random_state=0)
    assert time.perf_counter() - t < 2.0
    assert r.nnz == 13500 and len(np.unique(r.users * 150 + r.items)) == 13500
    assert r.user_counts.max() == 150                 # the heaviest user rated everything
    assert r.user_counts.min() >= 1 and r.item_counts.min() >= 1


def test_synthetic_too_few_ratings_to_cover():
    r, _ = make_synthetic(n_users=30, n_items=20, n_ratings=10, random_state=0)
    assert r.nnz == 10 and r.n_users == 30 and r.n_items == 20


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        (dict(n_ratings=10, density=0.1), "not both"),
        (dict(n_users=3, n_items=3, n_ratings=10), "exceeds the 3 x 3 = 9 possible pairs"),
        (dict(rank=0), "rank must be a positive integer"),
        (dict(noise_sd=-1.0), "noise_sd"),
        (dict(density=1.5), "density"),
        (dict(activity_exponent=-0.5), "activity_exponent"),
        (dict(factor_sd=0.0), "factor_sd"),
        (dict(mu=np.nan), "mu must be finite"),
    ],
)
def test_synthetic_bad_args(kw, msg):
    with pytest.raises(BayesMFError, match=msg):
        make_synthetic(**kw)


# ====================================================================== MovieLens readers
def test_load_ml100k(tmp_path):
    r = load_movielens(write_ml100k(tmp_path / "ml-100k"))
    assert r.name == "ml-100k" and r.scale == RatingScale(1, 5, 1)
    assert r.user_ids.tolist() == [22, 186, 196, 244]
    assert r.item_ids.tolist() == [242, 302, 377]
    frame = r.to_frame()
    assert list(frame.itertuples(index=False, name=None)) == [
        (196, 242, 3.0), (186, 302, 3.0), (22, 377, 1.0), (196, 377, 5.0), (244, 242, 2.0)]
    assert r.item_info.loc[377, "title"] == "Am\xe9lie (2001)"    # latin-1 decoded
    assert r.item_info.loc[302, "genres"] == "Crime|Horror|Mystery|Thriller"
    assert r.item_titles(r.item_index([242])).tolist() == ["Kolya (1996)"]


def test_load_ml100k_without_titles_and_nested(tmp_path):
    write_ml100k(tmp_path / "ml-100k", u_item=None)
    r = load_movielens(tmp_path)                    # the parent holding one ml-* folder
    assert r.nnz == 5 and r.item_info is None and r.name == "ml-100k"


def test_load_ml1m(tmp_path):
    d = tmp_path / "ml-1m"
    d.mkdir()
    (d / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n"
                                   "2::1193::4::978298413\n")
    (d / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        .encode("latin-1"))
    r = load_movielens(d)
    assert r.name == "ml-1m" and r.scale == RatingScale(1, 5, 1) and r.nnz == 3
    assert r.values.tolist() == [5.0, 3.0, 4.0]
    assert r.item_info.loc[661, "genres"] == "Animation|Children's|Musical"
    assert r.item_titles(r.item_index([1193]))[0].startswith("One Flew")


def test_load_ml_latest_layout(tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n5,10,3.5,1\n5,20,0.5,2\n"
                                   "9,10,5.0,3\n")
    (d / "movies.csv").write_text('movieId,title,genres\n10,"Heat, The (1995)",Action\n'
                                  "20,Up (2009),Animation\n")
    r = load_movielens(d)
    assert r.scale == RatingScale(0.5, 5, 0.5) and r.name == "mine"
    assert r.values.tolist() == [3.5, 0.5, 5.0]
    assert r.item_info.loc[10, "title"] == "Heat, The (1995)"


@pytest.mark.parametrize(
    ("content", "msg"),
    [
        ("1\t2\t3\t4\n1\t3\t4\n", r"u.data: line 2 has 3 field\(s\), expected 4"),
        ("1\t2\t3\t4\n1\t3\t4\t5\t6\n", r"u.data: corrupt file: .*line 2"),
        ("1\t2\t3\t4\n1\tabc\t4\t5\n", r"u.data: line 2: non-numeric item 'abc'"),
        ("1\t2\t3\t4\n1\t3\t4\t5\n2\t7", r"u.data: line 3 has 2 field\(s\).*truncated"),
        ("1\t2\t3\t4\n\n1\t3\t4\t5\n", r"u.data: line 2 has 0 field\(s\)"),
        ("1\t2\t3\n", r"u.data: line 1 has 3 fields, expected 4"),
        ("", r"u.data: the file is empty"),
        ("1\t2\t3\t4\n1\t3\t7\t5\n", r"off the declared scale 1.0..5.0"),
        ("1\t2\t3\t4\n1\t2\t4\t5\n", r"occur more than once"),
        ("1\t2\t3\t4\n1.5\t3\t4\t5\n", r"non-integer user id"),
    ],
)
def test_load_ml100k_corrupt(tmp_path, content, msg):
    d = write_ml100k(tmp_path / "ml-100k", u_data=content, u_item=None)
    with pytest.raises(DataError, match=msg) as info:
        load_movielens(d)
    assert str(d) in str(info.value)


def test_trailing_blank_lines_are_fine(tmp_path):
    d = write_ml100k(tmp_path / "ml-100k", u_data=U_DATA + "\n\n", u_item=None)
    assert load_movielens(d).nnz == 5


def test_load_ml1m_truncated(tmp_path):
    d = tmp_path / "ml-1m"
    d.mkdir()
    (d / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::11")
    with pytest.raises(DataError, match=r"ratings.dat: line 3 has 2 field\(s\), expected 4"):
        load_movielens(d)


def test_load_ml_latest_bad_header_and_movies(tmp_path):
    d = tmp_path / "x"
    d.mkdir()
    (d / "ratings.csv").write_text("user,movie,stars\n1,2,3\n")
    with pytest.raises(DataError, match=r"ratings.csv: header lacks column\(s\) \['userId'"):
        load_movielens(d)
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,3,4\n1,3,x,5\n")
    with pytest.raises(DataError, match=r"ratings.csv: line 3: non-numeric rating 'x'"):
        load_movielens(d)
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,3,4\n")
    (d / "movies.csv").write_text("id,name\n1,a\n")
    with pytest.raises(DataError, match=r"movies.csv: expected columns movieId, title"):
        load_movielens(d)


def test_load_ml_latest_extra_columns_and_truncation(tmp_path):
    d = tmp_path / "x"
    d.mkdir()
    (d / "ratings.csv").write_text("userId,movieId,rating,source\n1,2,3.5,web\n2,2,4,app\n")
    r = load_movielens(d)
    assert r.values.tolist() == [3.5, 4.0] and r.user_ids.tolist() == [1, 2]
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,3.5,9\n2,2")
    with pytest.raises(DataError, match=r"ratings.csv: line 3 has 2 field\(s\), expected 4 "
                                        r"\(userId, movieId, rating, timestamp\).*truncated"):
        load_movielens(d)


def test_corrupt_u_item(tmp_path):
    d = write_ml100k(tmp_path / "ml-100k", u_item="242|Kolya\nnot a line\n")
    with pytest.raises(DataError, match=r"u.item: line 2 is not 'movie id \| title"):
        load_movielens(d)


def test_directory_without_known_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetNotFoundError,
                       match=r"none of the known MovieLens files: looked for u.data \(100K\), "
                             r"ratings.dat \(1M\), ratings.csv \(latest\); found \['notes.txt'\]"):
        load_movielens(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="no such directory"):
        load_movielens(tmp_path / "missing")
    with pytest.raises(DatasetNotFoundError, match="is a file, not a MovieLens directory"):
        load_movielens(tmp_path / "notes.txt")


def test_bare_name_uses_cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"ml-100k is not in the cache.*download_movielens"):
        load_movielens("ml-100k", cache_dir=tmp_path / "cache")
    write_ml100k(tmp_path / "cache" / "ml-100k")
    assert load_movielens("ml-100k", cache_dir=tmp_path / "cache").nnz == 5


# ====================================================================== CSV
def test_load_csv_infers_scale(tmp_path):
    p = tmp_path / "my.csv"
    pd.DataFrame({"userId": ["a", "b", "a"], "movieId": [7, 7, 8],
                  "rating": [1.5, 4.0, 2.0]}).to_csv(p, index=False)
    r = load_csv(p)
    assert r.scale == RatingScale(1.5, 4.0, 0.5) and r.name == "my"
    assert r.to_frame().values.tolist() == [["a", 7, 1.5], ["b", 7, 4.0], ["a", 8, 2.0]]


def test_load_csv_options(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("u\ti\tr\n1\t1\t2\n1\t1\t4\n2\t1\t5\n")
    r = load_csv(p, "u", "i", "r", sep="\t", duplicates="mean", scale=(1, 5, 1))
    assert r.nnz == 2 and sorted(r.values.tolist()) == [3.0, 5.0]
    with pytest.raises(DataError, match=r"t.tsv: 1 \(user, item\) pair\(s\) occur more than once"):
        load_csv(p, "u", "i", "r", sep="\t")
    q = tmp_path / "one.csv"
    q.write_text("userId,movieId,rating\n1,1,3\n2,1,3\n")
    assert load_csv(q).scale is None            # a single distinct value: nothing to infer


@pytest.mark.parametrize(
    ("content", "msg"),
    [
        ("userId,item,rating\n1,2,3\n", r"bad.csv: missing column\(s\) \['movieId'\]"),
        ("userId,movieId,rating\n1,2,three\n", r"bad.csv: .*non-numeric rating"),
        ("userId,movieId,rating\n1,2,nan\n", r"bad.csv: .*NaN rating"),
        ("userId,movieId,rating\n1,2,inf\n2,2,3\n", r"bad.csv: .*infinite rating"),
        ("userId,movieId,rating\n", r"bad.csv: the ratings table is empty"),
        ("", r"bad.csv: the file is empty"),
        ("userId,movieId,rating\n1,2,3\n1,2,3,4,5\n", r"bad.csv: cannot parse the table"),
    ],
)
def test_load_csv_bad(tmp_path, content, msg):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(DataError, match=msg):
        load_csv(p)


def test_load_csv_off_scale_and_missing(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("userId,movieId,rating\n1,2,3\n2,2,9\n")
    with pytest.raises(DataError, match="s.csv: 1 rating.* off the declared scale"):
        load_csv(p, scale=RatingScale(1, 5, 1))
    with pytest.raises(DatasetNotFoundError, match="no such file"):
        load_csv(tmp_path / "nope.csv")


# ====================================================================== download
class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.server.hits.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files = {}
    server.hits = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_download_from_local_server_and_cache(http_server, tmp_path):
    server, base = http_server
    server.files["/ml-100k.zip"] = ml100k_zip()
    cache = tmp_path / "cache"
    d = download_movielens("ml-100k", cache_dir=cache, url=f"{base}/ml-100k.zip", progress=True)
    assert d == cache / "ml-100k" and (d / "u.data").is_file()
    r = load_movielens(d)
    assert r.nnz == 5 and r.item_info.loc[242, "title"] == "Kolya (1996)"
    assert server.hits == ["/ml-100k.zip"]
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k"]     # no leftovers
    # cached: no second request
    assert download_movielens("ml-100k", cache_dir=cache, url=f"{base}/ml-100k.zip") == d
    assert server.hits == ["/ml-100k.zip"]


def test_download_uses_env_cache_and_load_dispatch(http_server, tmp_path, monkeypatch):
    server, base = http_server
    server.files["/z.zip"] = ml100k_zip(top="some-other-name")
    monkeypatch.setenv("BAYESMF_CACHE", str(tmp_path / "envcache"))
    assert datasets.default_cache_dir() == tmp_path / "envcache"
    d = download_movielens("ml-100k", url=f"{base}/z.zip", progress=False)
    assert d == tmp_path / "envcache" / "ml-100k" and (d / "u.item").is_file()
    monkeypatch.chdir(tmp_path)
    assert load("ml-100k").nnz == 5                   # served from the cache, no download
    assert len(server.hits) == 1


def test_download_truncated_zip(http_server, tmp_path):
    server, base = http_server
    blob = ml100k_zip()
    server.files["/cut.zip"] = blob[: len(blob) // 2]
    with pytest.raises(DataError, match=r"not a valid zip archive \(truncated or corrupt"):
        download_movielens("ml-100k", cache_dir=tmp_path, url=f"{base}/cut.zip", progress=False)
    assert list(tmp_path.iterdir()) == []             # the partial file was removed


def test_download_corrupt_member(http_server, tmp_path):
    server, base = http_server
    blob = bytearray(ml100k_zip())
    i = blob.find(b"tiny test copy")
    if i < 0:   # deflated: damage bytes inside the compressed data of the first member
        i = 60
    blob[i:i + 8] = b"\x00" * 8
    server.files["/bad.zip"] = bytes(blob)
    with pytest.raises(DataError, match="corrupt"):
        download_movielens("ml-100k", cache_dir=tmp_path, url=f"{base}/bad.zip", progress=False)
    assert not (tmp_path / "ml-100k").exists()


def test_download_zip_without_ratings(http_server, tmp_path):
    server, base = http_server
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    server.files["/empty.zip"] = buf.getvalue()
    with pytest.raises(DataError, match="holds no MovieLens ratings file"):
        download_movielens("ml-100k", cache_dir=tmp_path, url=f"{base}/empty.zip",
                           progress=False)


def test_download_http_error_and_offline(http_server, tmp_path):
    _, base = http_server
    with pytest.raises(DatasetNotFoundError, match=r"could not download ml-1m .*HTTP 404"):
        download_movielens("ml-1m", cache_dir=tmp_path, url=f"{base}/missing.zip",
                           progress=False)
    # a port with nothing listening: connection refused, as when offline
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(DatasetNotFoundError,
                       match=r"may be offline.*pass its directory.*load_movielens"):
        download_movielens("ml-100k", cache_dir=tmp_path, url=f"http://127.0.0.1:{port}/x.zip",
                           progress=False)
    assert not any(tmp_path.iterdir())


def test_download_unknown_name(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"unknown MovieLens set 'ml-10m'"):
        download_movielens("ml-10m", cache_dir=tmp_path)


# ====================================================================== load()
def test_load_dispatch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load("toy").name == "toy"
    assert load("ml-latest-small", titles=False).nnz == 100836
    syn = load("synthetic", n_users=10, n_items=8, random_state=4)
    assert syn.n_users == 10 and syn.name == "synthetic"
    np.testing.assert_array_equal(syn.values, make_synthetic(10, 8, random_state=4)[0].values)
    d = write_ml100k(tmp_path / "ml-100k-copy")
    assert load(str(d)).nnz == 5
    p = tmp_path / "r.csv"
    p.write_text("userId,movieId,rating\n1,2,3\n2,2,4\n")
    assert load(str(p)).nnz == 2
    assert load(p).nnz == 2
    with pytest.raises(DatasetNotFoundError, match=r"unknown data source 'nonsense'.*CSV file"):
        load("nonsense")


def test_load_named_set_offline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def refuse(*args, **kwargs):
        import urllib.error

        raise urllib.error.URLError("no network")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", refuse)
    with pytest.raises(DatasetNotFoundError, match=r"could not download ml-1m.*no network.*offline"):
        load("ml-1m", cache_dir=tmp_path / "c")



def test_parent_with_several_sets_is_ambiguous(tmp_path):
    write_ml100k(tmp_path / "a")
    write_ml100k(tmp_path / "b")
    with pytest.raises(DatasetNotFoundError, match=r"several rating sets \(a, b\)"):
        load_movielens(tmp_path)
