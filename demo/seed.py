"""A realistic demo data set: branches, stores, accounts at varied capacity use,
bindings in every state, and users of every role with generated passwords.

Other domains add their own demo data through DEMO_EXTENSIONS (functions taking
a session and the Random), run after the base set inside the same transaction.
"""

import importlib
import random
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, select

from base.timeutil import utcnow
from core.auth.passwords import generate_password, hash_password
from db.models import Account, AccountStatus, Binding, Branch, Role, Store, StoreStatus, User

BRANCHES = [
    ("BJ01", "北京分公司", "北京"), ("SH01", "上海分公司", "上海"), ("GZ01", "广州分公司", "广州"),
    ("SZ01", "深圳分公司", "深圳"), ("CD01", "成都分公司", "成都"), ("WH01", "武汉分公司", "武汉"),
    ("HZ01", "杭州分公司", "杭州"), ("XA01", "西安分公司", "西安"),
]
DISTRICTS = {
    "北京": ["朝阳", "海淀", "东城", "西城", "丰台", "通州", "昌平", "大兴"],
    "上海": ["浦东", "徐汇", "静安", "黄浦", "长宁", "闵行", "杨浦", "普陀"],
    "广州": ["天河", "越秀", "海珠", "白云", "番禺", "荔湾", "黄埔", "花都"],
    "深圳": ["南山", "福田", "罗湖", "宝安", "龙岗", "龙华", "光明", "坪山"],
    "成都": ["锦江", "青羊", "武侯", "成华", "金牛", "高新", "双流", "郫都"],
    "武汉": ["江汉", "江岸", "武昌", "洪山", "汉阳", "青山", "东西湖", "光谷"],
    "杭州": ["西湖", "上城", "拱墅", "滨江", "萧山", "余杭", "临平", "钱塘"],
    "西安": ["雁塔", "碑林", "莲湖", "新城", "未央", "灞桥", "长安", "高新"],
}
LANDMARKS = ["万达广场", "大悦城", "万象城", "银泰", "吾悦广场", "龙湖天街", "印象城", "凯德广场",
             "火车站", "体育中心", "大学城", "步行街", "中心医院", "人民广场", "科技园", "机场"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["晓雯", "子涵", "思远", "欣怡", "浩然", "雨桐", "嘉怡", "俊杰", "梓萱", "一鸣", "佳琪", "文博"]

STORES_PER_BRANCH = 75
# The WeCom member the BJ branch manager is (QR login and app messages in the demo).
BJ_MANAGER_MEMBER = "bj.manager"
# "module:function", each (session, rng) -> None
DEMO_EXTENSIONS: list[str] = ["demo.funnel:seed_funnel", "demo.standby:seed_standby", "demo.capacity:seed_capacity",
                               "demo.people:seed_people"]


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    branch: str | None
    password: str
    wecom_userid: str | None = None


def is_empty(*, session: Session) -> bool:
    return session.exec(select(Store.id).limit(1)).first() is None and \
        session.exec(select(User.id).limit(1)).first() is None


def seed_demo(*, session: Session, seed: int = 20261123, capacity_limit: int = 5000) -> list[DemoUser]:
    rng = random.Random(seed)
    now = utcnow()
    branches: list[Branch] = []
    for code, name, _city in BRANCHES:
        branch = Branch(code=code, name=name)
        session.add(branch)
        branches.append(branch)
    session.flush()

    stores: list[Store] = []
    serial = 0
    for branch, (_code, _name, city) in zip(branches, BRANCHES, strict=True):
        used: set[str] = set()
        for _ in range(STORES_PER_BRANCH):
            serial += 1
            while True:
                name = f"{city}{rng.choice(DISTRICTS[city])}{rng.choice(LANDMARKS)}店"
                if name not in used:
                    break
                name = f"{city}{rng.choice(DISTRICTS[city])}{rng.choice(LANDMARKS)}{rng.randint(2, 9)}号店"
                if name not in used:
                    break
            used.add(name)
            # CRM IDs: mostly six digits with leading zeros, some without.
            crm_id = f"{serial:06d}" if serial % 7 else f"{branch.code[:2]}{serial:05d}"
            status = StoreStatus.closed if rng.random() < 0.06 else StoreStatus.open
            store = Store(crm_store_id=crm_id, name=name, branch_id=branch.id, status=status)
            session.add(store)
            stores.append(store)
    session.flush()

    accounts: list[Account] = []
    for index, store in enumerate(stores):
        surname = rng.choice(SURNAMES)
        pinyin = f"store{store.crm_store_id.lower()}"
        usage = rng.choice([0.03, 0.08, 0.15, 0.22, 0.3, 0.38, 0.45, 0.52, 0.6, 0.66, 0.69, 0.74, 0.83, 0.92, 1.0])
        limit = capacity_limit if index % 11 else capacity_limit * 2
        accounts.append(Account(userid=pinyin, name=f"{store.name.replace('店', '')}客服{surname}{rng.choice(GIVEN)}",
                                capacity_limit=limit, customer_count=int(limit * usage),
                                count_synced_at=now - timedelta(minutes=rng.randint(1, 50))))
    for spare in range(12):
        accounts.append(Account(userid=f"standby{spare + 1:02d}", name=f"备用客服{spare + 1:02d}",
                                capacity_limit=capacity_limit, status=AccountStatus.standby))
    session.add_all(accounts)
    session.flush()

    # The spare accounts at the end of `accounts` stay unbound.
    for store, account in zip(stores, accounts, strict=False):
        roll = rng.random()
        if roll < 0.12:
            continue  # no binding yet
        started = now - timedelta(days=rng.randint(1, 120))
        if store.status == StoreStatus.closed:
            session.add(Binding(store_id=store.id, account_id=account.id, started_at=started, shown=True,
                                reviewed_at=started, ended_at=now - timedelta(days=rng.randint(0, 30)),
                                end_reason="store_closed"))
            continue
        if roll < 0.25:
            session.add(Binding(store_id=store.id, account_id=account.id, started_at=started))  # pending review
            continue
        if roll < 0.3:
            account.status = AccountStatus.disabled
            session.add(account)
        session.add(Binding(store_id=store.id, account_id=account.id, started_at=started,
                            shown=roll > 0.32, reviewed_at=started + timedelta(hours=3)))
    session.flush()
    # History: some stores had a full account before (换号; the old account stays
    # listed for ongoing operation), some were unbound once, some lost their
    # account when the member left (disabled).
    open_stores = [s for s in stores if s.status == StoreStatus.open]
    for number, store in enumerate(open_stores[:36], start=1):
        reason = "replaced" if number <= 20 else "unbound" if number <= 30 else "account_disabled"
        old = Account(userid=f"old{store.crm_store_id.lower()}", name=f"{store.name.replace('店', '')}老号",
                      capacity_limit=capacity_limit, customer_count=capacity_limit if reason == "replaced" else 40,
                      count_synced_at=now - timedelta(minutes=20),
                      status=AccountStatus.disabled if reason == "account_disabled" else AccountStatus.active)
        session.add(old)
        session.flush()
        session.add(Binding(store_id=store.id, account_id=old.id, started_at=now - timedelta(days=300),
                            shown=reason == "replaced", reviewed_at=now - timedelta(days=300),
                            ended_at=now - timedelta(days=150), end_reason=reason))
    session.flush()

    users = _demo_users(session, branches)
    for target in DEMO_EXTENSIONS:
        module, function = target.split(":")
        getattr(importlib.import_module(module), function)(session, rng)
    return users


def _demo_users(session: Session, branches: list[Branch]) -> list[DemoUser]:
    specs = [
        ("admin", Role.hq_admin, None, None),
        ("operator", Role.hq_operator, None, None),
        ("agency", Role.hq_operator, branches[1], utcnow() + timedelta(days=90)),
        ("bj_manager", Role.branch_manager, branches[0], None),
        ("sh_manager", Role.branch_manager, branches[1], None),
        ("analyst", Role.viewer, None, None),
    ]
    created: list[DemoUser] = []
    for username, role, branch, expires in specs:
        password = generate_password()
        wecom_userid = BJ_MANAGER_MEMBER if username == "bj_manager" else None
        session.add(User(username=username, role=role.value, branch_id=branch.id if branch else None,
                         expires_at=expires, password_hash=hash_password(password), wecom_userid=wecom_userid,
                         display_name={"admin": "总部管理员", "operator": "总部企微运营", "agency": "代运营(上海)",
                                       "bj_manager": "北京分公司经理", "sh_manager": "上海分公司经理",
                                       "analyst": "数据分析"}[username]))
        created.append(DemoUser(username, role.value, branch.code if branch else None, password, wecom_userid))
    session.flush()
    return created

