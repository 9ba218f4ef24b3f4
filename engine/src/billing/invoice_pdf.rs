//! An invoice as a PDF (A4, the standard Helvetica fonts, WinAnsi text): the organization, the
//! customer, number and dates, the lines and the totals. Long invoices continue on more pages.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use crate::access::auth::{Actor, Permission};
use crate::access::organizations::Organization;
use crate::billing::customers::{self, Customer};
use crate::billing::invoices::{self, Invoice};
use crate::error::Result;
use crate::store::db::Db;

const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;
const MARGIN: f32 = 50.0;
const LINE_HEIGHT: f32 = 16.0;
const LINES_FIRST_PAGE: usize = 24;
const LINES_PER_PAGE: usize = 40;
const REGULAR: Name = Name(b"F1");
const BOLD: Name = Name(b"F2");

/// A font at a size: what a piece of text is set in.
#[derive(Clone, Copy)]
struct Face {
    font: Name<'static>,
    size: f32,
}

impl Face {
    const fn new(font: Name<'static>, size: f32) -> Self {
        Self { font, size }
    }
}

const TITLE: Face = Face::new(BOLD, 22.0);
const SENDER: Face = Face::new(BOLD, 12.0);
const LABEL: Face = Face::new(BOLD, 10.0);
const BODY: Face = Face::new(REGULAR, 10.0);
const FOOTER: Face = Face::new(REGULAR, 8.0);

/// Column right edges of the line table.
const QUANTITY_RIGHT: f32 = 360.0;
const PRICE_RIGHT: f32 = 455.0;
const AMOUNT_RIGHT: f32 = PAGE_WIDTH - MARGIN;

pub struct InvoicePdf {
    /// `INV-0001.pdf`, or `draft-inv_….pdf` before the invoice is issued.
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// `GET /invoices/{id}/pdf`.
pub async fn render_invoice(db: &Db, actor: &Actor, id: &str) -> Result<InvoicePdf> {
    actor.require(Permission::ReadFinancials)?;
    let invoice = crate::store::resource::get::<invoices::Invoices>(db, actor, id).await?;
    let customer_row = crate::store::db::Sql::new("SELECT * FROM customers WHERE id = ?")
        .arg(invoice.customer_id.as_str())
        .fetch_one(db)
        .await?;
    let customer = customers::from_row(&customer_row)?;
    let filename = match &invoice.number {
        Some(number) => format!("{number}.pdf"),
        None => format!("draft-{}.pdf", invoice.id),
    };
    Ok(InvoicePdf {
        filename,
        bytes: render(&actor.organization, &customer, &invoice),
    })
}

/// Helvetica's advance widths (thousandths of the font size) for ASCII 32–126.
const HELVETICA_WIDTHS: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667,
    611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667,
    667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500,
    222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
];

fn text_width(text: &str, size: f32) -> f32 {
    text.chars()
        .map(|c| match c as u32 {
            32..=126 => f32::from(HELVETICA_WIDTHS[(c as u32 - 32) as usize]),
            _ => 556.0,
        })
        .sum::<f32>()
        * size
        / 1000.0
}

/// Text in the WinAnsi encoding of the standard fonts; what it cannot show becomes `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{ff}' => c as u8,
            '€' => 0x80,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            _ => b'?',
        })
        .collect()
}

/// Cuts `text` to fit `width`, with an ellipsis when it had to.
fn fit(text: &str, size: f32, width: f32) -> String {
    if text_width(text, size) <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    for c in text.chars() {
        if text_width(&format!("{out}{c}…"), size) > width {
            break;
        }
        out.push(c);
    }
    format!("{out}…")
}

/// One page's drawing, with the few operations the invoice needs.
struct Page {
    content: Content,
}

impl Page {
    fn new() -> Self {
        Self {
            content: Content::new(),
        }
    }

    fn text(&mut self, face: Face, x: f32, y: f32, text: &str) {
        self.content
            .begin_text()
            .set_font(face.font, face.size)
            .next_line(x, y)
            .show(Str(&win_ansi(text)))
            .end_text();
    }

    fn text_right(&mut self, face: Face, right: f32, y: f32, text: &str) {
        self.text(face, right - text_width(text, face.size), y, text);
    }

    fn rule(&mut self, y: f32, gray: f32) {
        self.content
            .set_stroke_gray(gray)
            .set_line_width(0.6)
            .move_to(MARGIN, y)
            .line_to(PAGE_WIDTH - MARGIN, y)
            .stroke();
    }
}

fn date_or_dash(date: &Option<String>) -> &str {
    date.as_deref().unwrap_or("—")
}

pub fn render(org: &Organization, customer: &Customer, invoice: &Invoice) -> Vec<u8> {
    let title = match (&invoice.number, invoice.status.as_str()) {
        (_, "void") => format!("Invoice {} (VOID)", invoice.number.as_deref().unwrap_or("")),
        (Some(number), _) => format!("Invoice {number}"),
        (None, _) => "Draft invoice".to_owned(),
    };
    let mut pages = vec![Page::new()];
    let first = &mut pages[0];
    first.text(TITLE, MARGIN, PAGE_HEIGHT - MARGIN - 10.0, &title);
    first.text_right(
        SENDER,
        AMOUNT_RIGHT,
        PAGE_HEIGHT - MARGIN - 8.0,
        &fit(&org.name, 12.0, 220.0),
    );
    let mut y = PAGE_HEIGHT - MARGIN - 50.0;
    first.text(LABEL, MARGIN, y, "Bill to");
    first.text(LABEL, 330.0, y, "Issue date");
    first.text_right(BODY, AMOUNT_RIGHT, y, date_or_dash(&invoice.issue_date));
    y -= LINE_HEIGHT;
    let mut bill_to = vec![customer.name.clone()];
    bill_to.extend(customer.email.clone());
    if let Some(address) = &customer.address {
        bill_to.extend(address.lines().map(str::to_owned).take(4));
    }
    let facts = [
        ("Due date", date_or_dash(&invoice.due_date).to_owned()),
        (
            "Period",
            match (&invoice.period_from, &invoice.period_to) {
                (Some(f), Some(t)) => format!("{f} to {t}"),
                _ => "—".to_owned(),
            },
        ),
        ("Currency", invoice.currency.clone()),
        ("Status", invoice.status.clone()),
    ];
    for i in 0..bill_to.len().max(facts.len()) {
        if let Some(line) = bill_to.get(i) {
            first.text(BODY, MARGIN, y, &fit(line, 10.0, 260.0));
        }
        if let Some((label, value)) = facts.get(i) {
            first.text(LABEL, 330.0, y, label);
            first.text_right(BODY, AMOUNT_RIGHT, y, value);
        }
        y -= LINE_HEIGHT;
    }
    y -= LINE_HEIGHT;

    let header = |page: &mut Page, y: f32| {
        page.text(LABEL, MARGIN, y, "Description");
        page.text_right(LABEL, QUANTITY_RIGHT, y, "Quantity");
        page.text_right(LABEL, PRICE_RIGHT, y, "Unit price");
        page.text_right(LABEL, AMOUNT_RIGHT, y, "Amount");
        page.rule(y - 6.0, 0.3);
        y - LINE_HEIGHT - 4.0
    };
    y = header(&mut pages[0], y);
    let mut room = LINES_FIRST_PAGE;
    for line in &invoice.lines {
        if room == 0 {
            pages.push(Page::new());
            y = header(
                pages.last_mut().expect("a page"),
                PAGE_HEIGHT - MARGIN - 10.0,
            );
            room = LINES_PER_PAGE;
        }
        let page = pages.last_mut().expect("a page");
        page.text(BODY, MARGIN, y, &fit(&line.description, 10.0, 220.0));
        let unit = if line.kind == "time" { " h" } else { "" };
        page.text_right(BODY, QUANTITY_RIGHT, y, &format!("{}{unit}", line.quantity));
        page.text_right(BODY, PRICE_RIGHT, y, &line.unit_price);
        page.text_right(BODY, AMOUNT_RIGHT, y, &line.amount);
        y -= LINE_HEIGHT;
        room -= 1;
    }
    if y < MARGIN + 8.0 * LINE_HEIGHT {
        pages.push(Page::new());
        y = PAGE_HEIGHT - MARGIN - 10.0;
    }
    let page = pages.last_mut().expect("a page");
    page.rule(y + 10.0, 0.3);
    y -= 4.0;
    let currency = &invoice.currency;
    let totals = [
        (
            "Subtotal",
            format!("{} {currency}", invoice.subtotal),
            false,
        ),
        (
            &*format!("Tax ({}%)", invoice.tax_rate),
            format!("{} {currency}", invoice.tax_total),
            false,
        ),
        ("Total", format!("{} {currency}", invoice.total), true),
        ("Paid", format!("{} {currency}", invoice.amount_paid), false),
        (
            "Amount due",
            format!("{} {currency}", invoice.amount_due),
            true,
        ),
    ]
    .map(|(label, value, bold)| (label.to_owned(), value, bold));
    for (label, value, bold) in &totals {
        let face = if *bold { LABEL } else { BODY };
        page.text(face, 330.0, y, label);
        page.text_right(face, AMOUNT_RIGHT, y, value);
        y -= LINE_HEIGHT;
    }
    if let Some(notes) = &invoice.notes {
        y -= LINE_HEIGHT;
        page.text(LABEL, MARGIN, y, "Notes");
        for line in notes.lines().take(6) {
            y -= LINE_HEIGHT;
            page.text(BODY, MARGIN, y, &fit(line, 10.0, PAGE_WIDTH - 2.0 * MARGIN));
        }
    }
    let count = pages.len();
    for (i, page) in pages.iter_mut().enumerate() {
        page.text_right(
            FOOTER,
            AMOUNT_RIGHT,
            MARGIN - 20.0,
            &format!("{title} · page {} of {count}", i + 1),
        );
    }
    write_document(&title, pages)
}

fn write_document(title: &str, pages: Vec<Page>) -> Vec<u8> {
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let mut next = 6;
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.document_info(info)
        .title(TextStr(title))
        .producer(TextStr("timix"));
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    let mut page_ids = Vec::with_capacity(pages.len());
    for page in pages {
        let (page_id, content_id) = (Ref::new(next), Ref::new(next + 1));
        next += 2;
        page_ids.push(page_id);
        let mut writer = pdf.page(page_id);
        writer
            .parent(tree)
            .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
            .contents(content_id);
        let mut resources = writer.resources();
        let mut fonts = resources.fonts();
        fonts.pair(REGULAR, regular).pair(BOLD, bold);
        fonts.finish();
        resources.finish();
        writer.finish();
        pdf.stream(content_id, &page.content.finish());
    }
    let count = page_ids.len() as i32;
    pdf.pages(tree).kids(page_ids).count(count);
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_encoded_for_the_standard_fonts() {
        assert_eq!(
            win_ansi("Ab 1€ é"),
            vec![b'A', b'b', b' ', b'1', 0x80, b' ', 0xe9]
        );
        assert_eq!(win_ansi("日"), b"?".to_vec());
    }

    #[test]
    fn long_text_is_cut_to_fit() {
        let cut = fit(&"W".repeat(100), 10.0, 100.0);
        assert!(cut.ends_with('…'));
        assert!(text_width(&cut, 10.0) <= 100.0 + 10.0);
        assert_eq!(fit("short", 10.0, 100.0), "short");
    }

    #[test]
    fn widths_follow_helvetica() {
        assert_eq!(text_width("0", 10.0), 5.56);
        assert_eq!(text_width("W", 1000.0), 944.0);
    }
}
