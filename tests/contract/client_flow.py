"""Drives Corridor through a client generated from its /openapi.json (openapi-python-client):
quote, pay with the quote, poll to COMPLETED, and find the payment in the list.

Usage: client_flow.py PACKAGE_DIR BASE_URL MERCHANT_KEY  (PACKAGE_DIR holds the generated
package `corridor_client`)."""

import sys
import time

sys.path.insert(0, sys.argv[1])
base_url, key = sys.argv[2], sys.argv[3]

from corridor_client import AuthenticatedClient  # noqa: E402
from corridor_client.api.payments import create_payment, get_payment, list_payments  # noqa: E402
from corridor_client.api.quotes import create_quote, get_quote  # noqa: E402
from corridor_client.models import CreatePayment, CreateQuote, PaymentAccepted, PaymentView, QuoteView  # noqa: E402

client = AuthenticatedClient(base_url=base_url, token=key, raise_on_unexpected_status=True)

quote = create_quote.sync(client=client, body=CreateQuote(from_currency="USD", to_currency="EUR", amount=100_000))
assert isinstance(quote, QuoteView), quote
assert quote.amount == 100_000 and quote.guaranteed_payout > 0, quote
again = get_quote.sync(client=client, quote_id=quote.quote_id)
assert isinstance(again, QuoteView) and again.quote_id == quote.quote_id, again

accepted = create_payment.sync(
    client=client,
    body=CreatePayment(quote_id=quote.quote_id, source_account="client-src", destination_account="client-dst"),
    idempotency_key=f"client-{quote.quote_id}",
)
assert isinstance(accepted, PaymentAccepted), accepted
payment_id = accepted.payment_id

deadline = time.monotonic() + 60
while True:
    payment = get_payment.sync(client=client, payment_id=payment_id)
    assert isinstance(payment, PaymentView), payment
    if payment.status == "COMPLETED":
        break
    assert time.monotonic() < deadline, f"not completed: {payment.status}"
    time.sleep(0.1)
assert payment.payout_amount == quote.guaranteed_payout, (payment.payout_amount, quote.guaranteed_payout)

page = list_payments.sync(client=client, limit=100)
assert any(p.payment_id == payment_id for p in page.data), page
print(f"ok {payment_id} {payment.status}")
