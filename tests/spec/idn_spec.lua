-- core.idn.to_ascii: libidn2 (IDNA2008, UTS #46 non-transitional, NFC input).
local idn = require("mxprobe.core").idn

describe("core.idn.to_ascii", function()
  it("turns U-labels into A-labels, leaving ASCII labels alone", function()
    assert.equal("xn--bcher-kva.example", idn.to_ascii("bücher.example"))
    assert.equal("xn--r8jz45g.xn--zckzah", idn.to_ascii("例え.テスト"))
    assert.equal("xn--mgbcd4a2b0d2b.example", idn.to_ascii("العربية.example"))
    assert.equal("mail.xn--bcher-kva.example", idn.to_ascii("mail.bücher.example"))
  end)

  it("folds case (UTS #46 mapping), also of ASCII", function()
    assert.equal("xn--bcher-kva.example", idn.to_ascii("BÜCHER.Example"))
    assert.equal("example.org", idn.to_ascii("EXAMPLE.org"))
  end)

  it("is non-transitional: ß stays ß (not ss)", function()
    assert.equal("xn--fa-hia.de", idn.to_ascii("faß.de"))
  end)

  it("normalises to NFC first: composed and decomposed ü give the same name", function()
    local composed = "b\u{FC}cher.example"
    local decomposed = "bu\u{308}cher.example"
    assert.are_not.equal(composed, decomposed)
    assert.equal(idn.to_ascii(composed), idn.to_ascii(decomposed))
  end)

  it("maps ideographic full stops to dots", function()
    assert.equal("xn--r8jz45g.xn--zckzah", idn.to_ascii("例え。テスト"))
  end)

  it("keeps an A-label and a trailing dot as given", function()
    assert.equal("xn--bcher-kva.example", idn.to_ascii("xn--bcher-kva.example"))
    assert.equal("xn--bcher-kva.example.", idn.to_ascii("bücher.example."))
  end)

  it("answers nil, 'idn', detail for names IDNA2008 forbids", function()
    for _, bad in ipairs { "☃.net", "-bücher.example", "\xff\xfe.example", "ü" .. ("a"):rep(70) .. ".example",
                           ("a"):rep(64) .. ".org" } do
      local r, code, detail = idn.to_ascii(bad)
      assert.is_nil(r, bad)
      assert.equal("idn", code)
      assert.is_string(detail)
      assert.truthy(#detail > 0)
    end
  end)

  it("refuses empty names and NUL bytes without asking libidn2", function()
    assert.same({ nil, "idn", "empty name" }, { idn.to_ascii("") })
    local r, code, detail = idn.to_ascii("a\0b.example")
    assert.is_nil(r); assert.equal("idn", code); assert.matches("NUL", detail)
  end)

  it("raises on a non-string argument", function()
    assert.has_error(function() idn.to_ascii(nil) end)
    assert.has_error(function() idn.to_ascii({}) end)
  end)
end)
