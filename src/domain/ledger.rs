//! Where a payment's money goes, as double-entry transfers: the amounts each leg carries, the
//! accounts, and which transfers each step of the state machine opens, posts or voids — the
//! one statement of the payment's accounting.
//!
//! Every transfer moves one amount of one currency from a debit account to a credit account,
//! both of that currency (an account's name ends with its currency), so every transfer — and
//! therefore every total per currency — balances by construction. Money that is in flight
//! (the onramp's purchase, the offramp's sale, a refund's reversal) is held by **two-phase**
//! transfers: written `PENDING` when the leg starts and resolved exactly once, `POSTED` when
//! the provider settles or `VOIDED` when it fails. A posted transfer is never changed: a
//! correction (fees returned on a refund) is a new transfer.
//!
//! The story of one payment of 1,000.00 USD to EUR (fees 21.00 + 10.50 + 15.75):
//!
//! | step | transfers |
//! |---|---|
//! | onramp initiated | pending: `merchant:{id}:funding:USD` → `provider:{onramp}:onramp:USD` 952.75 (the source sent to buy USDC); funding → `platform:fees:USD` 21.00, 10.50, 15.75 (each fee); `provider:{onramp}:onramp:USDC` → `platform:treasury:USDC` 952.750000 (the USDC bought) |
//! | onramp settled | all five posted |
//! | onramp failed | all five voided: nothing was captured |
//! | offramp initiated | pending: treasury → `provider:{offramp}:offramp:USDC` (the USDC sold); `provider:{offramp}:offramp:EUR` → `payouts:EUR` the guaranteed payout |
//! | offramp settled | both posted; the FX result posted: the sale's proceeds at the executed rate less the payout, provider → `platform:fx:EUR` (a gain) or the reverse (a loss) |
//! | offramp failed | both voided |
//! | refund initiated | pending, within what was captured: treasury → `provider:{onramp}:onramp:USDC` (sold back); `provider:{onramp}:onramp:USD` → `refunds:USD` the net; `platform:fees:USD` → `refunds:USD` the platform and offramp fees (never earned) |
//! | refund settled | all four posted: `refunds:USD` received amount − onramp fee |
//! | payout returned | posted: `payouts:EUR` → the offramp's clearing, the payout back; the offramp's clearing (USDC) → treasury, the USDC it buys back at the mid now; the difference with the payment's USDC to or from `platform:fx:USDC` — then the refund as above |

use rust_decimal::Decimal;

use super::lifecycle::{Change, Context, Effects};
use super::payment::{PaymentRecord, PaymentState, Side};
use super::quote::payout_for;
use super::{Currency, Money, MoneyError};

/// USDC the onramp buys: the source amount net of all fees, at 1:1 major-unit parity
/// (95,275 USD cents → 952,750,000 micro-USDC).
pub fn onramp_usdc(amount: i64, total_fees: i64, source: Currency) -> Result<Money, MoneyError> {
    Money::new(amount, source)
        .checked_sub(Money::new(total_fees, source))?
        .at_parity(Currency::Usdc)
}

/// What a refunded source gets back: everything but the onramp's fee, the one cost actually
/// incurred (platform and offramp fees were never earned).
pub fn refund_amount(amount: i64, onramp_fee: i64, source: Currency) -> Result<Money, MoneyError> {
    Money::new(amount, source).checked_sub(Money::new(onramp_fee, source))
}

/// The source amount net of fees (what buys the USDC), in source minor units.
fn net(p: &PaymentRecord) -> Result<i64, MoneyError> {
    p.amount
        .checked_sub(p.total_fees)
        .ok_or(MoneyError::Overflow)
}

/// The platform's FX result on a payout executed at `executed`: what selling the payment's
/// USDC yields at that rate (rounded down, as a payout is) less the payout it guaranteed, in
/// payout minor units — positive a gain, negative a loss. It is `(executed − locked)` on the
/// USDC sold, to within the one minor unit each side's rounding drops.
pub fn fx_gain_loss(p: &PaymentRecord, executed: Decimal) -> Result<i64, MoneyError> {
    proceeds(p, executed)?
        .checked_sub(p.payout_amount)
        .ok_or(MoneyError::Overflow)
}

/// What the platform earned by quoting the customer rate rather than the mid at quote time,
/// in payout minor units (the spread: known when the quote is priced).
pub fn spread_revenue(p: &PaymentRecord) -> Result<i64, MoneyError> {
    proceeds(p, p.mid_rate)?
        .checked_sub(p.payout_amount)
        .ok_or(MoneyError::Overflow)
}

/// The USDC `minor` units of `currency` buy at `mid` (units of `currency` per USDC), rounded
/// down.
fn usdc_for(minor: i64, currency: Currency, mid: Decimal) -> Result<i64, MoneyError> {
    use rust_decimal::prelude::ToPrimitive;
    let scale = Decimal::from(10i64.pow(Currency::Usdc.exponent()))
        / Decimal::from(10i64.pow(currency.exponent()));
    Decimal::from(minor)
        .checked_div(mid)
        .and_then(|v| v.checked_mul(scale))
        .ok_or(MoneyError::Overflow)?
        .floor()
        .to_i64()
        .ok_or(MoneyError::Overflow)
}

fn proceeds(p: &PaymentRecord, rate: Decimal) -> Result<i64, MoneyError> {
    payout_for(
        net(p)?,
        rate,
        p.currency.exponent(),
        p.payout_currency.exponent(),
    )
}

/// The merchant's account the source amount is drawn from.
pub fn merchant_funding(merchant_id: &str, c: Currency) -> String {
    format!("merchant:{merchant_id}:funding:{c}")
}

/// A provider's clearing account for one side, in one currency: what Corridor and the
/// provider owe each other, which reconciliation compares with the provider's own record.
pub fn provider_clearing(provider: &str, side: Side, c: Currency) -> String {
    format!("provider:{provider}:{side}:{c}")
}

/// Fee revenue.
pub fn platform_fees(c: Currency) -> String {
    format!("platform:fees:{c}")
}

/// FX gains and losses on payouts.
pub fn platform_fx(c: Currency) -> String {
    format!("platform:fx:{c}")
}

/// The USDC the platform holds between the two legs.
pub const TREASURY: &str = "platform:treasury:USDC";

/// Money paid out to beneficiaries.
pub fn payouts(c: Currency) -> String {
    format!("payouts:{c}")
}

/// Money returned to sources.
pub fn refunds(c: Currency) -> String {
    format!("refunds:{c}")
}

/// The currency code an account holds (its name's last segment).
pub fn account_currency(account: &str) -> &str {
    account.rsplit(':').next().unwrap_or(account)
}

/// What a transfer is for, within its payment: a payment has at most one transfer of each
/// role (the store's key), so opening one twice is impossible.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
pub enum Role {
    /// The source, net of fees, sent to the onramp to buy USDC.
    #[strum(serialize = "onramp.source")]
    OnrampSource,
    /// The platform's fee.
    #[strum(serialize = "fee.platform")]
    PlatformFee,
    /// The onramp's fee.
    #[strum(serialize = "fee.onramp")]
    OnrampFee,
    /// The offramp's fee.
    #[strum(serialize = "fee.offramp")]
    OfframpFee,
    /// The USDC the onramp delivers.
    #[strum(serialize = "onramp.usdc")]
    UsdcBought,
    /// The USDC sold to the offramp.
    #[strum(serialize = "offramp.usdc")]
    UsdcSold,
    /// The guaranteed payout to the beneficiary.
    #[strum(serialize = "offramp.payout")]
    Payout,
    /// The sale yielded more than the payout.
    #[strum(serialize = "fx.gain")]
    FxGain,
    /// The sale yielded less than the payout.
    #[strum(serialize = "fx.loss")]
    FxLoss,
    /// The USDC sold back to the onramp for a refund.
    #[strum(serialize = "refund.usdc")]
    RefundUsdc,
    /// The net source amount returned.
    #[strum(serialize = "refund.source")]
    RefundSource,
    /// The platform fee returned (never earned).
    #[strum(serialize = "refund.fee.platform")]
    RefundPlatformFee,
    /// The offramp fee returned (never earned).
    #[strum(serialize = "refund.fee.offramp")]
    RefundOfframpFee,
    /// A payout the beneficiary's bank sent back.
    #[strum(serialize = "return.payout")]
    ReturnPayout,
    /// The USDC the returned payout buys back.
    #[strum(serialize = "return.usdc")]
    ReturnUsdc,
    /// Buying back yielded more USDC than the payment's.
    #[strum(serialize = "return.fx.gain")]
    ReturnFxGain,
    /// Buying back yielded less USDC than the payment's.
    #[strum(serialize = "return.fx.loss")]
    ReturnFxLoss,
}

impl Role {
    /// The stored code (`fee.platform`).
    pub fn code(self) -> &'static str {
        self.into()
    }

    /// What the transfer is, in words (the API's `reason`).
    pub fn reason(self) -> &'static str {
        match self {
            Role::OnrampSource => "source funds sent to the onramp",
            Role::PlatformFee => "platform fee",
            Role::OnrampFee => "onramp fee",
            Role::OfframpFee => "offramp fee",
            Role::UsdcBought => "USDC bought",
            Role::UsdcSold => "USDC sold for the payout",
            Role::Payout => "payout to the beneficiary",
            Role::FxGain => "FX gain on the payout",
            Role::FxLoss => "FX loss on the payout",
            Role::RefundUsdc => "USDC sold back for the refund",
            Role::RefundSource => "source refunded",
            Role::RefundPlatformFee => "platform fee returned",
            Role::RefundOfframpFee => "offramp fee returned",
            Role::ReturnPayout => "payout returned by the beneficiary's bank",
            Role::ReturnUsdc => "USDC bought back with the returned payout",
            Role::ReturnFxGain => "FX gain on buying back",
            Role::ReturnFxLoss => "FX loss on buying back",
        }
    }
}

/// The transfers of the onramp leg, in flight together.
pub const ONRAMP: &[Role] = &[
    Role::OnrampSource,
    Role::PlatformFee,
    Role::OnrampFee,
    Role::OfframpFee,
    Role::UsdcBought,
];
/// The transfers of the offramp leg.
pub const OFFRAMP: &[Role] = &[Role::UsdcSold, Role::Payout];
/// The transfers of a refund.
pub const REFUND: &[Role] = &[
    Role::RefundUsdc,
    Role::RefundSource,
    Role::RefundPlatformFee,
    Role::RefundOfframpFee,
];

/// Where a transfer stands: pending while its leg is in flight, then posted or voided, once.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, strum::Display, strum::EnumString, strum::IntoStaticStr,
)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum EntryStatus {
    /// Money in flight: counted apart from posted balances.
    Pending,
    /// Final.
    Posted,
    /// Never happened (the leg failed); final.
    Voided,
}

impl EntryStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One movement of money of one payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// What it is for.
    pub role: Role,
    /// The account money leaves.
    pub debit: String,
    /// The account money enters.
    pub credit: String,
    /// Minor units of `currency`; always > 0.
    pub amount: i64,
    /// The currency of both accounts.
    pub currency: Currency,
    /// Written pending (two-phase) or posted (final at once).
    pub status: EntryStatus,
}

/// What one step does to a payment's ledger, in the unit of work of its transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posting {
    /// New transfers. `within_capture`: the store checks, in the same unit, that what the
    /// payment's transfers credit to refunds stays within what its posted transfers drew from
    /// the merchant (a refund can never exceed the capture, however many try at once).
    Open {
        /// The transfers.
        transfers: Vec<Transfer>,
        /// Whether the refund limit applies.
        within_capture: bool,
    },
    /// The payment's pending transfers of these roles, posted.
    Post(Vec<Role>),
    /// The payment's pending transfers of these roles, voided.
    Void(Vec<Role>),
}

fn transfer(
    role: Role,
    debit: String,
    credit: String,
    money: Money,
    status: EntryStatus,
) -> Transfer {
    Transfer {
        role,
        debit,
        credit,
        amount: money.minor(),
        currency: money.currency(),
        status,
    }
}

/// New transfers, leaving out those of nothing (a fee tier of zero).
fn open(transfers: Vec<Transfer>, within_capture: bool) -> Posting {
    Posting::Open {
        transfers: transfers.into_iter().filter(|t| t.amount != 0).collect(),
        within_capture,
    }
}

/// The provider of the leg on `side`: as just initiated by these effects, else as recorded on
/// the payment, else the configured one.
fn provider<'a>(
    p: &'a PaymentRecord,
    effects: &'a Effects,
    side: Side,
    ctx: &'a Context,
) -> &'a str {
    effects
        .changes
        .iter()
        .find_map(|c| match c {
            Change::LegInitiated(s, leg) if *s == side => Some(leg.provider.as_str()),
            _ => None,
        })
        .or_else(|| p.leg(side).map(|l| l.provider.as_str()))
        .unwrap_or(match side {
            Side::Onramp => ctx.onramp,
            Side::Offramp => ctx.offramp,
        })
}

/// The postings of `effects` decided on payment `p` (as it was before them).
pub fn postings(
    p: &PaymentRecord,
    effects: &Effects,
    ctx: &Context,
) -> Result<Vec<Posting>, MoneyError> {
    use EntryStatus::{Pending as Held, Posted};
    use PaymentState::*;
    let (s, payout) = (p.currency, p.payout_currency);
    let source = |minor: i64| Money::new(minor, s);
    let usdc = || onramp_usdc(p.amount, p.total_fees, s);
    let funding = merchant_funding(&p.merchant_id, s);
    let to = effects.transition.as_ref().map(|m| m.to);
    Ok(match (p.state, to) {
        (Pending, Some(OnrampPending)) => {
            let onramp = provider(p, effects, Side::Onramp, ctx);
            let fee = |role, minor| {
                transfer(role, funding.clone(), platform_fees(s), source(minor), Held)
            };
            vec![open(
                vec![
                    transfer(
                        Role::OnrampSource,
                        funding.clone(),
                        provider_clearing(onramp, Side::Onramp, s),
                        source(net(p)?),
                        Held,
                    ),
                    fee(Role::PlatformFee, p.fees.platform),
                    fee(Role::OnrampFee, p.fees.onramp),
                    fee(Role::OfframpFee, p.fees.offramp),
                    transfer(
                        Role::UsdcBought,
                        provider_clearing(onramp, Side::Onramp, Currency::Usdc),
                        TREASURY.to_owned(),
                        usdc()?,
                        Held,
                    ),
                ],
                false,
            )]
        }
        (OnrampPending, Some(OnrampComplete)) => vec![Posting::Post(ONRAMP.to_vec())],
        (OnrampPending, Some(Failed)) => vec![Posting::Void(ONRAMP.to_vec())],
        (OnrampComplete, Some(OfframpPending)) => {
            let offramp = provider(p, effects, Side::Offramp, ctx);
            vec![open(
                vec![
                    transfer(
                        Role::UsdcSold,
                        TREASURY.to_owned(),
                        provider_clearing(offramp, Side::Offramp, Currency::Usdc),
                        usdc()?,
                        Held,
                    ),
                    transfer(
                        Role::Payout,
                        provider_clearing(offramp, Side::Offramp, payout),
                        payouts(payout),
                        Money::new(p.payout_amount, payout),
                        Held,
                    ),
                ],
                false,
            )]
        }
        (OfframpPending, Some(Completed)) => {
            let mut out = vec![Posting::Post(OFFRAMP.to_vec())];
            let executed = effects.changes.iter().find_map(|c| match c {
                Change::ExecutedRate(rate) => *rate,
                _ => None,
            });
            if let Some(rate) = executed {
                let fx = fx_gain_loss(p, rate)?;
                let clearing = provider_clearing(
                    provider(p, effects, Side::Offramp, ctx),
                    Side::Offramp,
                    payout,
                );
                let money = Money::new(fx.checked_abs().ok_or(MoneyError::Overflow)?, payout);
                let t = if fx >= 0 {
                    transfer(Role::FxGain, clearing, platform_fx(payout), money, Posted)
                } else {
                    transfer(Role::FxLoss, platform_fx(payout), clearing, money, Posted)
                };
                out.push(open(vec![t], false));
            }
            out
        }
        (OfframpPending, Some(RefundPending)) => vec![Posting::Void(OFFRAMP.to_vec())],
        (Completed, Some(RefundPending)) => {
            // The payout came back: the provider takes it back and buys USDC with it at the
            // market's mid now; what that yields beyond the payment's USDC (which the refund
            // sells back) is the platform's FX result, in USDC.
            let offramp = provider(p, effects, Side::Offramp, ctx);
            let usdc = usdc()?;
            let back = match ctx.market_mid {
                Some(mid) if mid > Decimal::ZERO => usdc_for(p.payout_amount, payout, mid)?,
                _ => usdc.minor(),
            };
            let fx = back.checked_sub(usdc.minor()).ok_or(MoneyError::Overflow)?;
            let in_usdc = |minor| Money::new(minor, Currency::Usdc);
            let mut transfers = vec![
                transfer(
                    Role::ReturnPayout,
                    payouts(payout),
                    provider_clearing(offramp, Side::Offramp, payout),
                    Money::new(p.payout_amount, payout),
                    Posted,
                ),
                transfer(
                    Role::ReturnUsdc,
                    provider_clearing(offramp, Side::Offramp, Currency::Usdc),
                    TREASURY.to_owned(),
                    in_usdc(back),
                    Posted,
                ),
            ];
            let magnitude = in_usdc(fx.checked_abs().ok_or(MoneyError::Overflow)?);
            transfers.push(if fx >= 0 {
                transfer(
                    Role::ReturnFxGain,
                    TREASURY.to_owned(),
                    platform_fx(Currency::Usdc),
                    magnitude,
                    Posted,
                )
            } else {
                transfer(
                    Role::ReturnFxLoss,
                    platform_fx(Currency::Usdc),
                    TREASURY.to_owned(),
                    magnitude,
                    Posted,
                )
            });
            vec![open(transfers, false)]
        }
        (RefundPending, None) => match effects.changes.iter().find_map(|c| match c {
            Change::Reversal { refund_amount, .. } => Some(*refund_amount),
            _ => None,
        }) {
            Some(refund) => {
                let onramp = provider(p, effects, Side::Onramp, ctx);
                let returned =
                    |role, minor| transfer(role, platform_fees(s), refunds(s), source(minor), Held);
                let transfers = vec![
                    transfer(
                        Role::RefundUsdc,
                        TREASURY.to_owned(),
                        provider_clearing(onramp, Side::Onramp, Currency::Usdc),
                        usdc()?,
                        Held,
                    ),
                    transfer(
                        Role::RefundSource,
                        provider_clearing(onramp, Side::Onramp, s),
                        refunds(s),
                        source(net(p)?),
                        Held,
                    ),
                    returned(Role::RefundPlatformFee, p.fees.platform),
                    returned(Role::RefundOfframpFee, p.fees.offramp),
                ];
                let credited: i64 = transfers[1..].iter().map(|t| t.amount).sum();
                debug_assert_eq!(credited, refund, "the refund rule and its transfers agree");
                vec![open(transfers, true)]
            }
            None => vec![],
        },
        (RefundPending, Some(Refunded)) => vec![Posting::Post(REFUND.to_vec())],
        _ => vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs_of_the_documented_example() {
        assert_eq!(
            onramp_usdc(100_000, 4_725, Currency::USD).unwrap().minor(),
            952_750_000
        );
        assert_eq!(
            refund_amount(100_000, 1_050, Currency::USD)
                .unwrap()
                .minor(),
            98_950
        );
    }

    #[test]
    fn the_fx_result_is_the_rate_difference_on_the_usdc_sold() {
        // 952.75 USD net at 0.9205 locked = 877.00 EUR guaranteed (87_700 in the example).
        let p = crate::domain::payment::example(PaymentState::OfframpPending);
        assert_eq!(fx_gain_loss(&p, "0.9205".parse().unwrap()).unwrap(), 0);
        // 952.75 × 0.9251 = 881.389... → 881.38: 4.38 EUR gained.
        assert_eq!(fx_gain_loss(&p, "0.9251".parse().unwrap()).unwrap(), 438);
        // 952.75 × 0.9100 = 867.0025 → 867.00: 10.00 EUR lost.
        assert_eq!(fx_gain_loss(&p, "0.91".parse().unwrap()).unwrap(), -1_000);
        assert_eq!(spread_revenue(&p).unwrap(), 438);
    }

    #[test]
    fn roles_round_trip() {
        for &r in <Role as strum::VariantArray>::VARIANTS {
            assert_eq!(r.code().parse::<Role>().unwrap(), r);
        }
        assert_eq!(account_currency("merchant:mer_1:funding:USD"), "USD");
        assert_eq!(account_currency(TREASURY), "USDC");
    }
}
