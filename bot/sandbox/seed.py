"""Seed the sandbox with a store chain: departments as stores, staff, customers, tags, group chats."""
from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Seeded:
    stores: list[int]
    staff: list[str]
    customers: list[str]
    follows: int  # (staff, customer) pairs
    tags: dict[str, str]  # name -> WeCom tag id


def seed_chain(state, stores: int = 3, staff: int = 30, customers: int = 20000, multi_every: int = 10,
               unionid_every: int = 2, seed: int = 7) -> Seeded:
    """A deterministic chain: every `multi_every`-th customer follows a second staff member, every
    `unionid_every`-th has a unionid, and customers carry 0–2 of four corp tags."""
    rnd = random.Random(seed)
    with state.lock:
        depts = [state.add_department(f"门店{i + 1}", id=100 + i) for i in range(stores)]
        userids = []
        for i in range(staff):
            userid = f"staff{i:03d}"
            state.add_staff(userid, f"店员{i}", department=depts[i % stores])
            userids.append(userid)
        tags = {name: state.add_corp_tag_seed(group, name)
                for group, name in (("等级", "VIP"), ("等级", "普通"), ("来源", "门店"), ("来源", "线上"))}
        tag_ids = list(tags.values())
        exts, follows = [], 0
        for n in range(customers):
            owner = userids[n % staff]
            unionid = f"union{n:06d}" if n % unionid_every == 0 else None
            chosen = tuple(rnd.sample(tag_ids, rnd.randint(0, 2)))
            ext = state.add_external_contact(owner, external_userid=f"wm{n:08d}", unionid=unionid,
                                             name=f"客户{n}", state=f"store{n % stores}", tags=chosen,
                                             createtime=1700000000 + n)
            follows += 1
            if n % multi_every == 0:
                other = userids[(n + 1) % staff]
                state.add_external_contact(other, external_userid=ext, createtime=1700000000 + n)
                follows += 1
            exts.append(ext)
        for i in range(min(5, customers)):
            state.add_group_chat(userids[i % staff], f"群{i}", external_userids=tuple(exts[i * 3:i * 3 + 3]))
    return Seeded(depts, userids, exts, follows, tags)


@dataclass
class SmallSeed:
    stores: list[int]  # department ids (`siyu sync wecom` makes them stores `wecom-<id>`)
    staff: list[str]
    customers: list[str]
    oa_followers: list[str]
    mp_users: list[str]


def seed_small(state, stores: int = 2, staff: int = 4, customers: int = 10, followers: int = 3,
               mp_users: int = 3) -> SmallSeed:
    """A small chain to try Siyu with; idempotent: ids, names and times are fixed, so a second run changes nothing.

    Every other customer has a unionid; the OA followers and mini-program users share the first customers'
    unionids (so Siyu shows them as one member each), and the first customers sit in one group chat.
    """
    with state.lock:
        depts = [state.add_department(f"门店{i + 1}", id=100 + i) for i in range(stores)]
        userids = []
        for i in range(staff):
            userid = f"staff{i:03d}"
            state.add_staff(userid, f"店员{i}", department=depts[i % stores])
            userids.append(userid)
        tags = [state.add_corp_tag_seed("等级", name) for name in ("VIP", "普通")]
        exts = []
        for n in range(customers if userids else 0):
            ext = f"wm{n:08d}"
            if ext not in state.contacts or ext not in state.follows[userids[n % staff]]:
                state.add_external_contact(userids[n % staff], external_userid=ext, name=f"客户{n}",
                                           unionid=f"union{n:06d}" if n % 2 == 0 else None,
                                           tags=(tags[n % 2],), createtime=1700000000 + n)
            exts.append(ext)
        openids = [f"oSANDBOX{n:06d}" for n in range(followers)]
        for n, openid in enumerate(openids):
            if openid not in state.oa_followers:
                state.add_oa_follower(openid, unionid=f"union{2 * n:06d}", nickname=f"粉丝{n}")
        mp = [state.add_mp_user(f"oMPSANDBOX{n:04d}", unionid=f"union{2 * n:06d}") for n in range(mp_users)]
        grouped = tuple(exts[:3])
        if grouped and not any(c["name"] == "会员群" for c in state.group_chats.values()):
            state.add_group_chat(userids[0], "会员群", external_userids=grouped)
    return SmallSeed(depts, userids, exts, openids, mp)
