from django.test import Client


def test_answer_inbound_route_exists(db: None, client: Client) -> None:
    response = client.get("/answer_inbound", {"to": "447700900001"})
    assert response.status_code == 400
    assert "uuid" in response.json()
