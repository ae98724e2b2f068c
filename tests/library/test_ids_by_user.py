"""``IdsByUser`` keeps a user of one connection as that id alone and behaves as a dict of
ordered id lists."""

from __future__ import annotations

import random

from netrun_ws.ids_by_user import IdsByUser


def _entry(index: IdsByUser, user_id: str) -> object:
    return index._entries.get(user_id)


def test_one_id_is_kept_as_itself_and_several_in_order() -> None:
    index = IdsByUser()
    index.add("alice", "c1")
    assert _entry(index, "alice") == "c1"
    index.add("alice", "c1")  # again: still one
    assert index.count("alice") == 1 and list(index.ids("alice")) == ["c1"]
    index.add("alice", "c2")
    index.add("alice", "c0")
    assert list(index.ids("alice")) == ["c1", "c2", "c0"]  # oldest first
    index.discard("alice", "c0")
    assert _entry(index, "alice") == {"c1": None, "c2": None}
    index.discard("alice", "c1")
    assert _entry(index, "alice") == "c2"  # back to the id alone
    index.discard("alice", "nope")
    index.discard("bob", "c2")
    assert index.count("alice") == 1 and index.count("bob") == 0
    index.discard("alice", "c2")
    assert len(index) == 0 and list(index.ids("alice")) == [] and not index.users()


def test_the_same_answers_as_a_dict_of_lists_over_random_changes() -> None:
    rng = random.Random(18)
    index, model = IdsByUser(), dict[str, list[str]]()
    for _ in range(5000):
        user, cid = f"u{rng.randrange(6)}", f"c{rng.randrange(10)}"
        if rng.random() < 0.55:
            index.add(user, cid)
            ids = model.setdefault(user, [])
            if cid not in ids:
                ids.append(cid)
        else:
            index.discard(user, cid)
            found = model.get(user)
            if found is not None and cid in found:
                found.remove(cid)
                if not found:
                    del model[user]
        assert len(index) == len(model) and set(index.users()) == set(model)
        for name in {f"u{n}" for n in range(6)}:
            assert list(index.ids(name)) == model.get(name, [])  # the same ids, in order
            assert index.count(name) == len(model.get(name, ()))
