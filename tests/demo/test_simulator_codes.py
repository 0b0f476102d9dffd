"""The simulator's contact ways over HTTP, as WeCom checks them: state and remark
at most 30 characters, type 1 exactly one member and type 2 at most 100, members
with customer contact (84074), unknown config_ids, the corp's quota, list paging,
the per-API rate limit, and a real QR image per way. The errcodes are WeCom's
documented ones, the same the client recognises."""

import io

import httpx
import pytest
import zxingcpp
from PIL import Image

from core.wecom.client import (
    CONTACT_WAY_NOT_FOUND,
    CONTACT_WAY_QUOTA,
    CONTACT_WAY_TOO_MANY_MEMBERS,
    REASONS,
    WeComError,
)
from demo.simulator_codes import INVALID_PARAMETER, INVALID_SCENE, INVALID_TYPE, NO_CUSTOMER_CONTACT, USER_NOT_FOUND
from tests.support.capacity import client_for, start_simulator


@pytest.fixture
def sim():
    simulator = start_simulator()
    simulator.set_customers({f"m{n:03d}": 0 for n in range(101)})
    simulator.set_members({"nocontact": {"name": "无客户联系", "customer_contact": False}})
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim):
    with client_for(sim) as c:
        yield c


def add(client, **body):
    return client.call("externalcontact/add_contact_way", method="POST",
                       body={"type": 2, "scene": 2, "user": ["m000"], "state": "s1", "remark": "r", **body})


def errcode(call) -> int | None:
    with pytest.raises(WeComError) as exc:
        call()
    return exc.value.errcode


def test_each_check_wecom_makes(sim, client):
    assert errcode(lambda: add(client, state="x" * 31)) == INVALID_PARAMETER
    assert errcode(lambda: add(client, remark="店" * 31)) == INVALID_PARAMETER
    assert errcode(lambda: add(client, type=3)) == INVALID_TYPE == 41039
    assert errcode(lambda: add(client, scene=3)) == INVALID_SCENE == 41040
    assert errcode(lambda: add(client, type=1, user=["m000", "m001"])) == CONTACT_WAY_TOO_MANY_MEMBERS == 41041
    assert errcode(lambda: add(client, user=[f"m{n:03d}" for n in range(101)])) == CONTACT_WAY_TOO_MANY_MEMBERS
    assert errcode(lambda: add(client, user=["nocontact"])) == NO_CUSTOMER_CONTACT
    assert errcode(lambda: add(client, user=["nobody"])) == USER_NOT_FOUND
    assert sim.codes.ways == {}
    assert add(client, state="x" * 30, remark="店" * 30, user=[f"m{n:03d}" for n in range(100)])["config_id"]
    assert errcode(lambda: client.get_contact_way("nope")) == CONTACT_WAY_NOT_FOUND
    assert errcode(lambda: client.del_contact_way("nope")) == CONTACT_WAY_NOT_FOUND
    assert errcode(lambda: client.update_contact_way(config_id="nope", user="m000", state="s", remark="r",
                                                     skip_verify=True)) == CONTACT_WAY_NOT_FOUND


def test_a_way_is_made_read_changed_listed_and_deleted(sim, client):
    config_id, qr_code = client.add_contact_way(user="m000", state="000101", remark="北京店", skip_verify=False)
    way = client.get_contact_way(config_id)
    assert (way["type"], way["scene"], way["user"], way["state"], way["remark"], way["skip_verify"]) == (
        2, 2, ["m000"], "000101", "北京店", False)
    assert way["qr_code"] == qr_code
    client.update_contact_way(config_id=config_id, user="m001", state="000101", remark="北京店", skip_verify=True)
    assert client.get_contact_way(config_id)["user"] == ["m001"]
    assert errcode(lambda: client.update_contact_way(config_id=config_id, user="nocontact", state="000101",
                                                     remark="北京店", skip_verify=True)) == NO_CUSTOMER_CONTACT
    assert client.get_contact_way(config_id)["user"] == ["m001"]      # a refused update changes nothing
    more = [client.add_contact_way(user="m002", state=f"s{n}", remark="r", skip_verify=True)[0] for n in range(3)]
    sim.codes.ways[more[0]].created_at = 0            # made long ago: outside the window asked for
    listed = client.list_contact_ways(start_time=1, end_time=2_000_000_000)
    assert sorted(listed) == sorted([config_id, *more[1:]])
    client.del_contact_way(config_id)
    assert config_id not in sim.codes.ways


def test_the_list_pages_at_most_1000(sim, client):
    for n in range(1005):
        sim.codes.keep(f"cfg{n:04d}", state=f"s{n}", user=["m000"], remark="r")
    first = client.call("externalcontact/list_contact_way", method="POST", body={"limit": 5000})
    assert len(first["contact_way"]) == 1000 and first["next_cursor"]
    assert len(client.list_contact_ways(start_time=0, end_time=2_000_000_000)) == 1005


def test_the_corps_quota(client, sim):
    sim.codes.quota = 1
    add(client)
    assert errcode(lambda: add(client, state="s2")) == CONTACT_WAY_QUOTA == 41045
    assert REASONS[CONTACT_WAY_QUOTA] == "wecom.reason.contact_way_quota"


def test_contact_ways_are_rate_limited_like_the_other_apis():
    simulator = start_simulator(per_minute=3)
    simulator.set_customers({"m000": 0})
    try:
        with client_for(simulator) as c:
            answers = [httpx.post(f"{simulator.base_url}/cgi-bin/externalcontact/add_contact_way",
                                  params={"access_token": c.access_token()},
                                  json={"type": 2, "scene": 2, "user": ["m000"], "state": f"s{n}"}).json()["errcode"]
                       for n in range(4)]
    finally:
        simulator.stop()
    assert answers == [0, 0, 0, 45009]


def test_the_qr_image_is_a_real_code_for_the_way(sim, client):
    config_id, qr_code = client.add_contact_way(user="m000", state="000101", remark="北京店", skip_verify=True)
    image = httpx.get(qr_code, timeout=5)
    assert image.headers["content-type"] == "image/png"
    [barcode] = zxingcpp.read_barcodes(Image.open(io.BytesIO(image.content)))
    assert barcode.text == sim.codes.scan_url(config_id)
    client.del_contact_way(config_id)
    assert httpx.get(qr_code, timeout=5).status_code == 404
